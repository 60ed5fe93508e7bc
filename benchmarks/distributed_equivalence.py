"""Data parallelism on tf.distribute (lesson 14 §9): equivalence with one device; the four traps.

    python benchmarks/distributed_equivalence.py [--steps 5]
        [--json benchmarks/results/distributed.json]

For a small GPT (`lessons_lib.distributed.TINY_GPT`: 2 layers, d_model 64, batch 8, warm-up 2) and
the baby GPT (`BABY_GPT`, `BABY_TRAIN`: batch 12; also with a warm-up of 2 steps), trains
``--steps`` steps on one device (lesson 09's `Trainer`) and under ``MirroredStrategy`` (2 logical
CPU devices) and ``MultiWorkerMirroredStrategy`` (2 worker processes on 127.0.0.1), same seeds and
global batches, and prints the largest differences of the per-step losses and of the final weights.
Then the traps: (a) clipping per replica vs after the sum, (b) ``fit`` under ``MirroredStrategy``
with int32 token ids, (c) ``fit`` under ``MultiWorkerMirroredStrategy``, (d)
``keras.distribution.DataParallel`` on the TensorFlow backend. On 2 CPU cores the replicas share the
cores: the times are not speed-ups.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from lessons_lib import distributed as d  # noqa: E402

DEVICES = d.split_cpu(2)  # before TensorFlow starts

import lessons_lib  # noqa: E402
from lessons_lib.training import BABY_GPT, BABY_TRAIN  # noqa: E402

KEYS = ("max_loss_diff", "max_weight_diff", "distributed_seconds", "replicas", "global_batch")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--json", help="also write the figures (and this command) to this file")
    a = p.parse_args()
    info = lessons_lib.setup(seed=0)
    data = d.tiny_corpus()
    runs = {
        "tiny GPT": (d.TINY_GPT, d.TINY_TRAIN),
        "baby GPT": (BABY_GPT, dataclasses.replace(BABY_TRAIN, max_steps=a.steps)),
        # lesson 09's warm-up keeps the first steps' learning rate near 1e-5: a short one moves the
        # weights as much as the later steps do
        "baby GPT, warm-up 2": (
            BABY_GPT,
            dataclasses.replace(BABY_TRAIN, max_steps=a.steps, warmup_steps=2),
        ),
    }
    equivalence = {}
    for name, (model_cfg, cfg) in runs.items():
        for strategy in ("mirrored", "multi-worker"):
            r = d.compare_with_single_device(strategy, a.steps, model_cfg, cfg, data, timeout=900)
            equivalence[f"{name}, {strategy}"] = {k: r[k] for k in KEYS}
            print(
                f"{name:19s} {strategy:12s} {a.steps} steps: max |Δloss| {r['max_loss_diff']:.2e}, "
                f"max |Δweight| {r['max_weight_diff']:.2e} ({r['distributed_seconds']:.0f} s)",
                flush=True,
            )
    t0 = time.perf_counter()
    traps = {
        "a_clipping": d.clipping_trap(a.steps),
        "b_fit_mirrored_int32": d.fit_dtype_trap(),
        "c_fit_multi_worker": d.multi_worker_fit_trap(),
        "d_keras_distribution_data_parallel": d.data_parallel_trap(),
    }
    a_ = traps["a_clipping"]
    print(
        f"(a) clip {a_['grad_clip']}, first-batch ‖∇L‖ {a_['full_batch_grad_norm']:.3f}, replicas "
        f"{[round(v, 3) for v in a_['replica_grad_norms']]}: correct max |Δweight| "
        f"{a_['correct (sum, clip, average)']['max_weight_diff']:.2e}, per replica "
        f"{a_['naive (clip per replica, then sum)']['max_weight_diff']:.2e}"
    )
    b = traps["b_fit_mirrored_int32"]["MirroredStrategy"]
    print(f"(b) fit under MirroredStrategy: model saw {b['dtypes_seen_by_model']}; {b['error']}")
    c = traps["c_fit_multi_worker"]["workers"]
    print(f"(c) fit under MultiWorkerMirroredStrategy: {[w and w.get('error') for w in c]}")
    dp = traps["d_keras_distribution_data_parallel"]
    print(
        f"(d) DataParallel on {dp['backend']}: variable {dp['variable_type']} on "
        f"{dp['variable_device']}, fit with {dp['fit_strategy']} ({dp['fit_replicas']} replica)"
    )
    print(f"traps: {time.perf_counter() - t0:.0f} s")
    if a.json:
        out = {
            "command": "python benchmarks/distributed_equivalence.py " + " ".join(sys.argv[1:]),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {info.device}",
            "tensorflow": d.tf.__version__,
            "keras": d.keras.__version__,
            "date": datetime.date.today().isoformat(),
            "note": (
                "2 logical CPU devices / 2 local workers share the same 2 cores: equivalence, "
                "not speed; seconds measured while other jobs ran (inflated)"
            ),
            "steps": a.steps,
            "logical_devices": DEVICES,
            "equivalence": equivalence,
            "traps": traps,
            "upstream": {
                "c_fit_multi_worker": [
                    "https://github.com/keras-team/keras/issues/20585",
                    "https://github.com/tensorflow/tensorflow/issues/72388",
                ],
                "d_keras_distribution_data_parallel": [
                    "https://keras.io/guides/distribution/ (the guide runs on JAX)",
                    "keras/src/backend/tensorflow/distribution_lib.py: '!!!DO NOT USE!!! ... "
                    "just a prototype'",
                ],
            },
        }
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(out, indent=2, default=str) + "\n")
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
