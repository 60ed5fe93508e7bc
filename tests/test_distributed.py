"""Tests for lessons_lib.distributed (lesson 14 §8–§9): data-parallel training on tf.distribute.

The equivalence checks train a small GPT (2 layers, d_model 64) for a few steps on one device and
distributed, and compare the per-step losses and the final weights. ``MirroredStrategy`` on 2
logical CPU devices needs a fresh process (the pytest process may have started TensorFlow
already), so it runs in one subprocess that also measures the clipping trap; the multi-worker runs
start 2 worker processes on 127.0.0.1. The whole file takes about 2–3 minutes on 2 busy cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from lessons_lib import distributed as d
from lessons_lib.training import TrainConfig

TOL = 5e-6  # float32 rounding of a few steps: the runs agree to ~1e-6
STEPS = 3

MIRRORED_SCRIPT = textwrap.dedent(
    f"""
    import json
    from lessons_lib import distributed as d
    out = {{"devices": d.split_cpu(2)}}
    import lessons_lib
    lessons_lib.setup(seed=0, verbose=False)
    from lessons_lib._backend import tf
    tf.constant(1.0)  # the runtime starts, with 2 logical CPUs
    out["again"] = d.split_cpu(2)  # already there: quiet
    try:
        d.split_cpu(3)
    except RuntimeError as e:
        out["too_late"] = str(e)
    import dataclasses
    try:
        d.DistributedTrainer(d.TINY_GPT, d.tiny_corpus()[:5000],
                             dataclasses.replace(d.TINY_TRAIN, batch_size=7),
                             d.make_strategy("mirrored", 2))
    except ValueError as e:
        out["bad_batch"] = str(e)
    out["trap"] = d.clipping_trap(steps={STEPS})
    print("RESULT" + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def mirrored():
    """One fresh process: split_cpu(2) after setup(), the mirrored equivalence, the clip trap."""
    p = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True, text=True, timeout=600
    )
    lines = [line for line in p.stdout.splitlines() if line.startswith("RESULT")]
    assert p.returncode == 0 and lines, p.stdout[-2000:] + p.stderr[-4000:]
    return json.loads(lines[-1][len("RESULT") :])


# ------------------------------------------------------------------------------------ bad input
def test_unknown_strategy_is_refused():
    with pytest.raises(
        ValueError, match=r"one of \('default', 'mirrored', 'multi-worker'\).*'tpu'"
    ):
        d.make_strategy("tpu")
    with pytest.raises(ValueError, match="strategy must be one of"):
        d.compare_with_single_device("horovod")


def test_default_and_multi_worker_take_no_device_list():
    with pytest.raises(ValueError, match="default strategy takes no devices"):
        d.make_strategy("default", devices=2)
    with pytest.raises(ValueError, match="one replica per worker"):
        d.make_strategy("multi-worker", devices=2)


@pytest.mark.parametrize("n", [0, -1, 1.5, True])
def test_split_cpu_needs_a_positive_int(n):
    with pytest.raises(ValueError, match="must be a positive integer"):
        d.split_cpu(n)


def test_a_batch_that_does_not_divide_among_workers_is_refused():
    cfg = TrainConfig(batch_size=8)
    with pytest.raises(ValueError, match=r"global batch \(8 windows\).*3 replicas"):
        d.launch_workers(3, d.TINY_GPT, cfg, 1, np.arange(500, dtype=np.int32) % 65)


def test_the_command_refuses_an_unknown_strategy():
    with pytest.raises(ValueError, match="strategy must be one of"):
        d.run_command_line("parameter-server", steps=1)


@pytest.mark.slow
def test_the_command_explains_a_batch_that_does_not_divide():
    p = subprocess.run(
        [sys.executable, "-m", "lessons_lib.training", "--strategy", "mirrored"]
        + ["--devices", "5", "--steps", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 2, p.stdout[-2000:] + p.stderr[-2000:]
    assert "error: the global batch (12 windows) must divide evenly among the 5" in p.stderr
    assert "Traceback" not in p.stderr


def test_bad_clip_mode_is_refused():
    with pytest.raises(ValueError, match="clip must be 'global' or 'per-replica'"):
        d.DistributedTrainer(d.TINY_GPT, np.arange(500) % 65, d.TINY_TRAIN, clip="local")


# ------------------------------------------------------------------------------------ mirrored
@pytest.mark.slow
def test_split_cpu_works_after_setup_and_refuses_too_late(mirrored):
    assert mirrored["devices"] == ["/device:CPU:0", "/device:CPU:1"]
    assert mirrored["again"] == mirrored["devices"]
    assert "too late" in mirrored["too_late"] and "fresh process" in mirrored["too_late"]


@pytest.mark.slow
def test_mirrored_batch_must_divide(mirrored):
    assert "global batch (7 windows)" in mirrored["bad_batch"]
    assert "2 replicas" in mirrored["bad_batch"]


@pytest.mark.slow
def test_mirrored_matches_single_device(mirrored):
    correct = mirrored["trap"]["correct (sum, clip, average)"]
    assert correct["max_loss_diff"] < TOL
    assert correct["max_weight_diff"] < TOL


@pytest.mark.slow
def test_clipping_per_replica_deviates(mirrored):
    trap = mirrored["trap"]
    # the clip binds: the full-batch gradient is longer than the threshold
    assert trap["full_batch_grad_norm"] > trap["grad_clip"]
    naive = trap["naive (clip per replica, then sum)"]
    correct = trap["correct (sum, clip, average)"]
    assert naive["max_weight_diff"] > 1e-5
    assert naive["max_weight_diff"] > 20 * correct["max_weight_diff"]


# ------------------------------------------------------------------------------------ default
def test_default_strategy_is_the_single_device_trainer():
    data = (np.arange(3000) % 65).astype(np.int32)
    r = d.compare_with_single_device("default", steps=2, train_data=data)
    assert r["replicas"] == 1
    assert r["max_loss_diff"] < 1e-6 and r["max_weight_diff"] < 1e-6
    assert r["single_losses"][1] < r["single_losses"][0]  # the steps did train


# ------------------------------------------------------------------------------------ multi-worker
@pytest.mark.slow
def test_multi_worker_matches_single_device():
    r = d.compare_with_single_device("multi-worker", steps=STEPS, workers=2, timeout=240)
    assert r["replicas"] == 2 and len(r["distributed_losses"]) == STEPS
    assert r["max_loss_diff"] < TOL
    assert r["max_weight_diff"] < TOL


@pytest.mark.slow
def test_a_dead_worker_fails_the_run_quickly():
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"worker 1 exited with code 3") as e:
        d.launch_workers(
            2,
            d.TINY_GPT,
            d.TINY_TRAIN,
            5,
            d.tiny_corpus()[:20000],
            timeout=120,
            env={d.KILL_HOOK: "1"},
        )
    assert time.perf_counter() - t0 < 120
    assert "other workers were stopped" in str(e.value)


def _sleeper(seconds: float, code: int = 0):
    return subprocess.Popen(
        [sys.executable, "-c", f"import time, sys; time.sleep({seconds}); sys.exit({code})"]
    )


def test_the_watchdog_names_the_failed_worker_and_stops_the_others(tmp_path):
    procs = [_sleeper(60), _sleeper(0.2, code=5)]
    logs = [tmp_path / "w0.log", tmp_path / "w1.log"]
    try:
        with pytest.raises(RuntimeError, match="worker 1 exited with code 5"):
            d._wait_for_workers(procs, logs, timeout=30, t0=time.perf_counter())
        procs[0].wait(timeout=10)  # killed, not left running
        assert procs[0].returncode != 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def test_the_watchdog_times_out_instead_of_hanging(tmp_path):
    procs = [_sleeper(60), _sleeper(60)]
    logs = [tmp_path / "w0.log", tmp_path / "w1.log"]
    try:
        with pytest.raises(TimeoutError, match=r"within 1 s: worker\(s\) \[0, 1\]"):
            d._wait_for_workers(procs, logs, timeout=1, t0=time.perf_counter())
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_tf_config_names_the_cluster_and_the_task():
    spec = json.loads(d.tf_config(["127.0.0.1:1", "127.0.0.1:2"], 1))
    assert spec == {
        "cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
        "task": {"type": "worker", "index": 1},
    }
    ports = d.free_ports(3)
    assert len(set(ports)) == 3
