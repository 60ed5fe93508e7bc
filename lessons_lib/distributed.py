"""Data-parallel training of the GPT on ``tf.distribute`` (lesson 14 §8 and §9).

Data parallelism, derived (lesson 14 §8). The training loss of a global batch of B windows is the
mean of the per-window losses ℓ_b (each itself the mean over the window's T tokens, `lm_loss`):

    L = (1/B) ∑_{b=1..B} ℓ_b          so          ∇L = (1/B) ∑_{b=1..B} ∇ℓ_b.

Split the batch into R shards of B/R windows, shard r on replica r (a GPU, a logical CPU device,
a worker process). Regroup the sum by shard:

    ∇L = ∑_{r=1..R} g_r,      g_r = (1/B) ∑_{b ∈ shard r} ∇ℓ_b = ∇[ (1/B) ∑_{b ∈ shard r} ℓ_b ].

So replica r computes g_r, the gradient of its shard's loss *sum* divided by the GLOBAL batch size
B (not by its own B/R: that would give the mean over its shard, R times too large once summed),
and one all-reduce SUM hands every replica the full-batch gradient ∇L. Every replica then applies
the same update to its copy of the weights, so the copies stay identical, step after step: R
replicas compute what one device computes, on R times less data each.

Anything non-linear in the gradient must come after the sum. Clipping by global norm,

    ĝ = ∇L · min(1, c / ‖∇L‖),        ‖∇L‖ = √(∑_variables ∑ (∇L)²),

needs the norm of the *summed* gradient: clipping each g_r by its own norm first changes the
update (each ‖g_r‖ is smaller than ‖∇L‖, so the replicas clip too little or not at all, and each
by its own factor). Keras 3's optimizers do exactly that under ``tf.distribute``: inside a replica,
``apply_gradients`` clips the local gradients (``BaseOptimizer._backend_apply_gradients`` →
``_clip_gradients``) and only then all-reduces them (``TFOptimizer._backend_update_step`` →
``_all_reduce_sum_gradients``). `DistributedTrainer` therefore all-reduces first, clips the sum,
divides it by R and hands that to an optimiser built without clipping, whose own all-reduce SUM
gives back the clipped ∇L (sum → clip → average; the trap is measured by `clipping_trap`).

Strategies (lesson 14 §9): ``"default"`` (one device, no replicas), ``"mirrored"``
(``MirroredStrategy``: one process, several GPUs — or several logical CPU devices, `split_cpu`),
``"multi-worker"`` (``MultiWorkerMirroredStrategy``: one process per machine, told its place by
the ``TF_CONFIG`` environment variable; `launch_workers` starts W of them on 127.0.0.1). On the
course's 2-core CPU two logical devices or two workers share the same cores: they show the
*equivalence* (`compare_with_single_device`), not a speed-up.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from lessons_lib._backend import keras, tf
from lessons_lib._validate import positive_int
from lessons_lib.training import (
    BABY_TRAIN,
    ModelConfig,
    TrainConfig,
    Trainer,
    _token_array,
    make_optimizer,
    random_windows,
    save_checkpoint,
    shakespeare_splits,
)

STRATEGIES = ("default", "mirrored", "multi-worker")
# A small GPT for the equivalence checks and the traps (2 layers, d_model 64, 104,832 parameters).
TINY_GPT = ModelConfig(vocab_size=65, max_len=32, d_model=64, num_heads=4, num_layers=2)
# Settings for a few-step comparison: a short warm-up, so the first steps move the weights.
TINY_TRAIN = TrainConfig(batch_size=8, max_steps=20, warmup_steps=2, decay_steps=20)
# The environment variable that makes worker 1 exit after its first step (tests only).
KILL_HOOK = "LESSONS_LIB_TEST_KILL_WORKER"


# ----------------------------------------------------------------------------------- devices
def split_cpu(n: int) -> list[str]:
    """Split the CPU into ``n`` logical devices, ``/device:CPU:0`` … ``CPU:n−1`` (lesson 14 §9).

    ``MirroredStrategy`` then mirrors the model on each, as it would on n GPUs. TensorFlow fixes its
    devices when its runtime starts (the first op, variable or device listing of logical devices),
    so call this first in a fresh process: ``lessons_lib.setup(seed=0)`` does not start the runtime
    and may come before it. Returns the device names; if ``n`` logical CPUs already exist it returns
    quietly, and if the runtime started with another number it raises a RuntimeError.
    """
    n = positive_int(n, "n (the number of logical CPU devices)")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
        )
    except RuntimeError as e:  # the runtime has started: fine only if it has n CPUs already
        have = len(tf.config.list_logical_devices("CPU"))
        if have != n:
            raise RuntimeError(
                f"split_cpu({n}) came too late: TensorFlow's runtime is already initialised with "
                f"{have} logical CPU device(s) (some TensorFlow op, variable or model ran before). "
                f"Call split_cpu({n}) first, before any TensorFlow op (right after "
                f"lessons_lib.setup), or in a fresh process / restarted kernel. "
                f"(TensorFlow said: {e})"
            ) from None
    return [f"/device:CPU:{i}" for i in range(n)]


def _mirrored_devices(devices: int | Sequence[str] | None) -> list[str] | None:
    """The device list for ``MirroredStrategy``: GPUs when there are enough, else logical CPUs."""
    if devices is None:
        return None  # MirroredStrategy's default: every GPU, else the CPU
    if isinstance(devices, (list, tuple)):
        if not devices or not all(isinstance(d, str) for d in devices):
            raise ValueError(f"devices must be a non-empty list of device names, got {devices!r}")
        return list(devices)
    n = positive_int(devices, "devices (the number of replicas)")
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) >= n:
        return [f"/gpu:{i}" for i in range(n)]
    if gpus:
        raise ValueError(f"devices={n} replicas asked for, but only {len(gpus)} GPU(s) found")
    return split_cpu(n)


def make_strategy(
    kind: str = "default",
    devices: int | Sequence[str] | None = None,
    timeout_seconds: float | None = None,
) -> tf.distribute.Strategy:
    """A ``tf.distribute`` strategy by name: ``"default"``, ``"mirrored"``, ``"multi-worker"``.

    Lesson 14 §9. ``"mirrored"`` takes ``devices``: a number of replicas (that many GPUs if there
    are, else that many logical CPU devices made by `split_cpu`), a list of device names, or None
    (all GPUs, else the one CPU). ``"multi-worker"`` reads its cluster from ``TF_CONFIG``;
    ``timeout_seconds`` bounds each collective (a dead peer then raises instead of hanging).
    A process gets one strategy per device set: asking again returns the same object.
    """
    if kind not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {kind!r}")
    if kind == "default":
        if devices is not None:
            raise ValueError(f"the default strategy takes no devices, got devices={devices!r}")
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        names = _mirrored_devices(devices)
        key = ("mirrored", None if names is None else tuple(names))
        if key not in _STRATEGY_CACHE:
            _STRATEGY_CACHE[key] = tf.distribute.MirroredStrategy(devices=names)
        return _STRATEGY_CACHE[key]
    if devices is not None:
        raise ValueError(
            "the multi-worker strategy runs one replica per worker process (its devices come from "
            f"TF_CONFIG), got devices={devices!r}"
        )
    if "multi-worker" not in _STRATEGY_CACHE:
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING,
            timeout_seconds=timeout_seconds,
        )
        _STRATEGY_CACHE["multi-worker"] = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=options
        )
    return _STRATEGY_CACHE["multi-worker"]


# One strategy per device set and process: two MirroredStrategy objects over the same devices
# number their collective ops alike, and a second one's all-reduce then collides with the first's
# ("Shape mismatch in the collective instance 100", measured with TensorFlow 2.21).
_STRATEGY_CACHE: dict[Any, tf.distribute.Strategy] = {}


# ----------------------------------------------------------------------------------- training
def _check_batch(batch_size: int, replicas: int) -> int:
    if batch_size % replicas:
        raise ValueError(
            f"the global batch ({batch_size} windows) must divide evenly among the {replicas} "
            f"replicas: choose a batch size that is a multiple of {replicas}"
        )
    return batch_size // replicas


class DistributedTrainer:
    """The GPT trained data-parallel under a ``tf.distribute`` strategy (lesson 14 §9).

    Built inside ``strategy.scope()`` like `Trainer` (lesson 09 §5): the model is
    ``model_cfg.build(model_seed)`` (`gpt2_init`), the optimiser `make_optimizer` (AdamW, the
    warm-up + cosine schedule, weight decay on matrices only), and the batches are the same global
    batches: ``random_windows`` from ``np.random.default_rng(cfg.seed)``, replica r taking rows
    r·B/R … (r+1)·B/R (every worker draws the whole batch and keeps its slice).

    One step (§8): each replica computes the gradient of (its shard's loss sum / B), one
    all-reduce SUM gives ∇L, which is clipped by its global norm (``cfg.grad_clip``); the optimiser
    (built without clipping) then applies it. Keras' ``apply`` inside a replica always all-reduces
    (SUM) the gradients it is given, so each replica hands it ĝ / R: sum → clip → average.
    ``clip="per-replica"`` instead lets Keras do it (clip each replica's gradient, then sum): the
    trap of `clipping_trap`. Token ids stay ``int32`` (no Keras ``fit``: `fit_dtype_trap`).
    """

    def __init__(
        self,
        model_cfg: ModelConfig,
        train_data: np.ndarray,
        cfg: TrainConfig = BABY_TRAIN,
        strategy: tf.distribute.Strategy | None = None,
        model_seed: int = 0,
        clip: str = "global",
    ):
        if clip not in ("global", "per-replica"):
            raise ValueError(f"clip must be 'global' or 'per-replica', got {clip!r}")
        self.strategy = strategy or tf.distribute.get_strategy()
        self.model_cfg, self.cfg, self.clip = model_cfg, cfg, clip
        self.train_data = np.asarray(_token_array(train_data), np.int32)
        self.replicas = self.strategy.num_replicas_in_sync
        self.shard = _check_batch(cfg.batch_size, self.replicas)
        with self.strategy.scope():
            self.model = model_cfg.build(seed=model_seed)
            self.optimizer = make_optimizer(self.model, cfg)
            if clip == "global":
                self.optimizer.global_clipnorm = None  # clipped after the all-reduce, below
            self.optimizer.build(self.model.trainable_variables)
        self.rng = np.random.default_rng(cfg.seed)
        self.steps_done = 0
        self.losses: list[float] = []
        self._step = tf.function(self._distributed_step)

    def _replica_gradients(self, x, y):
        """Inside replica r: the loss sum of its shard / B, and its gradient g_r (§8)."""
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.model(x, training=True)
            per_token = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=y, logits=tf.cast(logits, tf.float32)
            )  # [B/R, T]
            loss = tf.reduce_sum(per_token) / float(self.cfg.batch_size * self.model_cfg.max_len)
        grads = tape.gradient(loss, variables)  # the embedding's is IndexedSlices: make it dense
        return loss, [tf.convert_to_tensor(g) for g in grads]

    def _replica_step(self, x, y):
        loss, grads = self._replica_gradients(x, y)
        if self.clip == "global":
            ctx = tf.distribute.get_replica_context()
            grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)  # ∇L on every replica
            grads, _ = tf.clip_by_global_norm(grads, self.cfg.grad_clip)  # the sum's global norm
            # Keras' apply all-reduces (SUM) once more, inside the replica: hand it ĝ / R, so the
            # sum it forms is ĝ again (exact for R a power of two)
            grads = [g / float(self.replicas) for g in grads]
        # (with clip="per-replica" the optimiser clips g_r itself, then sums: the trap)
        self.optimizer.apply(grads, self.model.trainable_variables)
        return loss

    def _distributed_step(self, x, y):
        loss = self.strategy.run(self._replica_step, args=(x, y))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)

    def _distribute(self, batch: np.ndarray):
        """Replica r's rows r·B/R … (r+1)·B/R of a global batch, as ``int32`` tensors."""
        b = self.shard

        def rows(ctx):
            r = ctx.replica_id_in_sync_group
            return tf.constant(batch[r * b : (r + 1) * b], dtype=tf.int32)

        return self.strategy.experimental_distribute_values_from_function(rows)

    def step(self) -> float:
        """One step on the next global batch; returns its mean loss (before the update)."""
        x, y = random_windows(
            self.train_data, self.model_cfg.max_len, self.cfg.batch_size, self.rng
        )
        loss = float(self._step(self._distribute(x), self._distribute(y)))
        self.steps_done += 1
        self.losses.append(loss)
        if os.environ.get(KILL_HOOK) == "1" and _worker_index() == 1:
            os._exit(3)  # the worker-death test: worker 1 dies after its first step
        return loss

    def fit(self, steps: int, callback=None) -> list[float]:
        """``steps`` steps; ``callback(trainer)`` after each. Returns every step's loss so far."""
        for _ in range(positive_int(steps, "steps")):
            self.step()
            if callback is not None:
                callback(self)
        return self.losses

    def weights(self) -> list[np.ndarray]:
        """The model's weights (replica 0's copy; all copies are equal), as NumPy arrays."""
        return [np.asarray(w) for w in self.model.get_weights()]


def train_single_device(
    model_cfg: ModelConfig,
    train_data: np.ndarray,
    cfg: TrainConfig,
    steps: int,
    model_seed: int = 0,
    jit_compile: bool = False,
) -> tuple[list[float], list[np.ndarray]]:
    """The reference: lesson 09's `Trainer` for ``steps`` steps; returns (losses, weights)."""
    model = model_cfg.build(seed=model_seed)
    data = np.asarray(train_data, np.int32)
    trainer = Trainer(model, data, data[: model_cfg.max_len + 1], cfg, jit_compile=jit_compile)
    losses = [trainer.step() for _ in range(positive_int(steps, "steps"))]
    return losses, [np.asarray(w) for w in model.get_weights()]


def _max_differences(a: tuple[list, list], b: tuple[list, list]) -> dict[str, float]:
    losses = float(np.max(np.abs(np.asarray(a[0]) - np.asarray(b[0]))))
    weights = max(float(np.max(np.abs(u - v))) for u, v in zip(a[1], b[1]))
    return {"max_loss_diff": losses, "max_weight_diff": weights}


def compare_with_single_device(
    strategy: str = "mirrored",
    steps: int = 5,
    model_cfg: ModelConfig = TINY_GPT,
    cfg: TrainConfig = TINY_TRAIN,
    train_data: np.ndarray | None = None,
    devices: int = 2,
    workers: int = 2,
    clip: str = "global",
    timeout: float = 300.0,
) -> dict[str, Any]:
    """Train the same run single-device (`Trainer`) and distributed; the largest differences.

    Lesson 14 §9. Same model seed, same global batches: the per-step losses and the final weights
    should agree to float32 rounding (~1e-6). ``strategy="mirrored"`` uses ``devices`` replicas in
    this process (logical CPUs need `split_cpu` before TensorFlow starts); ``"multi-worker"``
    starts ``workers`` processes with `launch_workers`. Returns ``max_loss_diff``,
    ``max_weight_diff``, both runs' losses, and the setting.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    data = tiny_corpus() if train_data is None else np.asarray(train_data, np.int32)
    steps = positive_int(steps, "steps")
    t0 = time.perf_counter()
    if strategy == "multi-worker":
        _check_batch(cfg.batch_size, positive_int(workers, "workers"))
        result = launch_workers(workers, model_cfg, cfg, steps, data, clip=clip, timeout=timeout)
        dist = (result["losses"], result["weights"])
        replicas = workers
    else:
        s = make_strategy(strategy, devices if strategy == "mirrored" else None)
        trainer = DistributedTrainer(model_cfg, data, cfg, s, clip=clip)
        trainer.fit(steps)
        dist = (trainer.losses, trainer.weights())
        replicas = trainer.replicas
    t1 = time.perf_counter()
    single = train_single_device(model_cfg, data, cfg, steps)
    out = _max_differences(single, dist)
    out.update(
        strategy=strategy,
        replicas=replicas,
        clip=clip,
        steps=steps,
        global_batch=cfg.batch_size,
        grad_clip=cfg.grad_clip,
        single_losses=[float(v) for v in single[0]],
        distributed_losses=[float(v) for v in dist[0]],
        distributed_seconds=round(t1 - t0, 2),
    )
    return out


def tiny_corpus() -> np.ndarray:
    """Tiny Shakespeare's training split as character ids (the corpus of lesson 09)."""
    return shakespeare_splits()[0]


# ----------------------------------------------------------------------------------- multi-worker
def _worker_index() -> int | None:
    spec = os.environ.get("TF_CONFIG")
    if not spec:
        return None
    return int(json.loads(spec).get("task", {}).get("index", 0))


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (held open together while chosen)."""
    socks = []
    try:
        for _ in range(positive_int(n, "n")):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def tf_config(workers: Sequence[str], index: int) -> str:
    """The ``TF_CONFIG`` of worker ``index`` in a cluster of ``workers`` (``"host:port"`` each)."""
    return json.dumps(
        {"cluster": {"worker": list(workers)}, "task": {"type": "worker", "index": index}}
    )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def launch_workers(
    workers: int,
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    steps: int,
    train_data: np.ndarray,
    clip: str = "global",
    timeout: float = 300.0,
    out: Path | str | None = None,
    model_seed: int = 0,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run `DistributedTrainer` under ``MultiWorkerMirroredStrategy`` in W local processes.

    Lesson 14 §9: worker i gets ``TF_CONFIG`` naming the W workers on 127.0.0.1 (free ports) and
    its own index; all run the same training (``python -m lessons_lib.distributed worker``).
    Worker 0, the chief, writes the losses and weights (``.npz``) and, if ``out`` is given, the
    checkpoint there. If a worker dies (exits non-zero, is killed) the others are killed and a
    RuntimeError names it and its exit code; after ``timeout`` seconds everything is killed and a
    TimeoutError is raised: the run never hangs. Returns ``{"losses", "weights", "seconds"}``.
    """
    workers = positive_int(workers, "workers")
    _check_batch(cfg.batch_size, workers)
    with tempfile.TemporaryDirectory(prefix="lessons_lib_workers_") as tmp:
        tmp = Path(tmp)
        np.save(tmp / "train.npy", np.asarray(train_data, np.int32))
        job = {
            "model_cfg": dataclasses.asdict(model_cfg),
            "cfg": dataclasses.asdict(cfg),
            "steps": positive_int(steps, "steps"),
            "clip": clip,
            "model_seed": model_seed,
            "data": str(tmp / "train.npy"),
            "result": str(tmp / "result.npz"),
            "out": None if out is None else str(out),
            "collective_timeout": float(timeout),
        }
        (tmp / "job.json").write_text(json.dumps(job))
        seconds = _run_cluster(workers, "worker", tmp, timeout, env)
        res = np.load(tmp / "result.npz")
        n = int(res["n_weights"])
        return {
            "losses": [float(v) for v in res["losses"]],
            "weights": [res[f"w{i}"] for i in range(n)],
            "seconds": seconds,
        }


def _run_cluster(
    workers: int, mode: str, tmp: Path, timeout: float, env: dict[str, str] | None
) -> float:
    """Start ``workers`` processes ``python -m lessons_lib.distributed MODE`` with their
    ``TF_CONFIG`` (127.0.0.1, free ports), wait for them all; the wall time in seconds."""
    addresses = [f"127.0.0.1:{p}" for p in free_ports(workers)]
    procs, logs = [], []
    t0 = time.perf_counter()
    try:
        for i in range(workers):
            logs.append(tmp / f"worker{i}.log")
            e = {**os.environ, **(env or {}), "TF_CONFIG": tf_config(addresses, i)}
            e.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            e["LESSONS_LIB_JOB"] = str(tmp / "job.json")
            with open(logs[-1], "wb") as fh:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "lessons_lib.distributed", mode],
                        stdin=subprocess.DEVNULL,
                        stdout=fh,
                        stderr=subprocess.STDOUT,
                        env=e,
                    )
                )
        _wait_for_workers(procs, logs, timeout, t0)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return round(time.perf_counter() - t0, 2)


def _wait_for_workers(procs, logs, timeout: float, t0: float) -> None:
    """Poll the workers until all exit 0; raise as soon as one fails or time runs out."""
    while True:
        codes = [p.poll() for p in procs]
        for i, c in enumerate(codes):
            if c is not None and c != 0:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
                how = f"was killed by signal {-c}" if c < 0 else f"exited with code {c}"
                raise RuntimeError(
                    f"multi-worker run failed: worker {i} {how} after "
                    f"{time.perf_counter() - t0:.1f} s; the other workers were stopped. "
                    f"Last lines of worker {i}'s output:\n{_tail(logs[i])}"
                )
        if all(c == 0 for c in codes):
            return
        if time.perf_counter() - t0 > timeout:
            running = [i for i, c in enumerate(codes) if c is None]
            for i in running:
                procs[i].kill()
            raise TimeoutError(
                f"multi-worker run did not finish within {timeout:.0f} s: worker(s) {running} "
                f"still running were killed. Last lines of worker {running[0]}'s output:\n"
                f"{_tail(logs[running[0]])}"
            )
        time.sleep(0.2)


def _run_worker() -> int:
    """One worker of `launch_workers` (``python -m lessons_lib.distributed worker``)."""
    job = json.loads(Path(os.environ["LESSONS_LIB_JOB"]).read_text())
    strategy = make_strategy("multi-worker", timeout_seconds=job["collective_timeout"])
    model_cfg = ModelConfig(**job["model_cfg"])
    cfg = TrainConfig(**job["cfg"])
    data = np.load(job["data"])
    trainer = DistributedTrainer(model_cfg, data, cfg, strategy, job["model_seed"], job["clip"])
    trainer.fit(job["steps"])
    if _worker_index() == 0:
        weights = trainer.weights()
        np.savez(
            job["result"],
            losses=np.asarray(trainer.losses),
            n_weights=len(weights),
            **{f"w{i}": w for i, w in enumerate(weights)},
        )
        if job["out"]:
            save_checkpoint(
                trainer.model,
                job["out"],
                {"steps": job["steps"], "strategy": "multi-worker", "losses": trainer.losses},
            )
    return 0


# ----------------------------------------------------------------------------------- the traps
def _first_batch_norms(trainer: DistributedTrainer, x: np.ndarray, y: np.ndarray) -> dict:
    """‖∇L‖ and each shard's ‖g_r‖ for one global batch (eager, on the host)."""
    b, n = trainer.shard, trainer.replicas

    def norm(xs, ys):  # the replica's own gradient: its shard's loss sum / the global batch
        _, grads = trainer._replica_gradients(tf.constant(xs), tf.constant(ys))
        return float(tf.linalg.global_norm(grads))

    shards = [norm(x[r * b : (r + 1) * b], y[r * b : (r + 1) * b]) for r in range(n)]
    return {"full_batch_grad_norm": norm(x, y), "replica_grad_norms": shards}


def clipping_trap(
    steps: int = 5,
    devices: int = 2,
    model_cfg: ModelConfig = TINY_GPT,
    cfg: TrainConfig = TINY_TRAIN,
    train_data: np.ndarray | None = None,
) -> dict[str, Any]:
    """Trap (a), lesson 14 §9: global-norm clipping per replica vs after the sum.

    Trains the same run with ``clip="global"`` (sum → clip → average) and ``clip="per-replica"``
    (Keras' own ``global_clipnorm`` inside each replica: clip g_r, then sum) under a
    ``MirroredStrategy`` of ``devices`` replicas, each against `Trainer` on one device. Also
    returns the first batch's ‖∇L‖ and ‖g_r‖: the clip binds when they exceed ``cfg.grad_clip``.
    """
    data = tiny_corpus() if train_data is None else np.asarray(train_data, np.int32)
    out = {
        c: compare_with_single_device("mirrored", steps, model_cfg, cfg, data, devices, clip=c)
        for c in ("global", "per-replica")
    }
    probe = DistributedTrainer(model_cfg, data, cfg, make_strategy("mirrored", devices))
    x, y = random_windows(probe.train_data, model_cfg.max_len, cfg.batch_size, probe.rng)
    return {
        "grad_clip": cfg.grad_clip,
        **_first_batch_norms(probe, x, y),
        "correct (sum, clip, average)": {k: out["global"][k] for k in _DIFFS},
        "naive (clip per replica, then sum)": {k: out["per-replica"][k] for k in _DIFFS},
    }


_DIFFS = ("max_loss_diff", "max_weight_diff")


def fit_dtype_trap(devices: int = 2) -> dict[str, Any]:
    """Trap (b), lesson 14 §9: Keras ``fit`` under ``MirroredStrategy`` and int32 token ids.

    Calls ``fit`` on int32 NumPy arrays for a tiny GPT, once without a strategy and once under a
    ``MirroredStrategy`` of ``devices`` replicas, recording the dtype of every ``ids`` tensor the
    model is called with (and the error, if any). Under the strategy Keras builds the model on the
    first batch averaged over the replicas (``strategy.reduce("MEAN", …)`` in
    ``keras/src/backend/tensorflow/trainer.py``, ``_maybe_symbolic_build``): float32 ids, which
    `GPT` refuses. `DistributedTrainer` never goes through ``fit``: it hands each replica its
    int32 rows itself (``experimental_distribute_values_from_function``).
    """
    from lessons_lib.gpt import GPT

    rng = np.random.default_rng(0)
    cfg = ModelConfig(vocab_size=11, max_len=8, d_model=16, num_heads=2, num_layers=1)
    x = rng.integers(0, cfg.vocab_size, (8, cfg.max_len)).astype(np.int32)
    y = np.roll(x, -1, axis=1)
    result: dict[str, Any] = {"input_dtype": str(x.dtype)}
    original = GPT.call
    for name, strategy in (
        ("no strategy", None),
        ("MirroredStrategy", make_strategy("mirrored", devices)),
    ):
        seen: list[str] = []

        def spy(self, ids, *args, _seen=seen, **kwargs):
            _seen.append(str(getattr(ids, "dtype", type(ids).__name__)).replace("<dtype: ", ""))
            return original(self, ids, *args, **kwargs)

        GPT.call = spy
        try:
            scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
            with scope:
                model = cfg.build(seed=0)
                model.compile(
                    optimizer="adam",
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                )
            seen.clear()
            error = None
            try:
                model.fit(x, y, batch_size=4, epochs=1, verbose=0)
            except Exception as e:  # the trap: record it
                error = f"{type(e).__name__}: {_first_lines(str(e))}"
        finally:
            GPT.call = original
        result[name] = {
            "dtypes_seen_by_model": [d.rstrip(">'").strip("'") for d in seen],
            "error": error,
        }
    return result


def _first_lines(text: str, n: int = 6) -> str:
    """An error message on one line: its first ``n`` lines and its last one (no colour codes)."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > n + 1:
        lines = lines[:n] + ["…", lines[-1]]
    return " | ".join(lines)[:1200]


def multi_worker_fit_trap(workers: int = 2, timeout: float = 180.0) -> dict[str, Any]:
    """Trap (c), lesson 14 §9: Keras ``fit`` under ``MultiWorkerMirroredStrategy``.

    Starts ``workers`` processes on 127.0.0.1 (as `launch_workers` does), each building a plain
    ``Sequential`` model (one Dense layer, float data, MSE) in the strategy's scope and calling
    ``fit`` for one epoch; returns what each worker reported (``ok``, or the error and the Keras
    frames it came from). With Keras 3.15 / TensorFlow 2.21 it fails where trap (b) starts:
    ``_maybe_symbolic_build`` averages the first distributed batch with ``strategy.reduce``, which
    ``MultiWorkerMirroredStrategy`` refuses for a ``PerReplica`` batch. Open upstream:
    https://github.com/keras-team/keras/issues/20585.
    """
    workers = positive_int(workers, "workers")
    with tempfile.TemporaryDirectory(prefix="lessons_lib_fit_trap_") as tmp:
        tmp = Path(tmp)
        (tmp / "job.json").write_text(json.dumps({"report": str(tmp / "report{}.json")}))
        try:
            seconds = _run_cluster(workers, "fit-trap", tmp, timeout, None)
            failure = None
        except (RuntimeError, TimeoutError) as e:
            seconds, failure = None, f"{type(e).__name__}: {_first_lines(str(e), 3)}"
        reports = []
        for i in range(workers):
            path = tmp / f"report{i}.json"
            reports.append(json.loads(path.read_text()) if path.exists() else None)
    return {"workers": reports, "launcher": failure, "seconds": seconds}


def _run_fit_trap() -> int:
    job = json.loads(Path(os.environ["LESSONS_LIB_JOB"]).read_text())
    strategy = make_strategy("multi-worker", timeout_seconds=60)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    report: dict[str, Any] = {"keras": keras.__version__, "tensorflow": tf.__version__}
    keras.config.disable_traceback_filtering()  # keep Keras' own frames, for `_where`
    try:
        with strategy.scope():
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
            model.compile(optimizer="sgd", loss="mse")
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
        history = model.fit(dataset, epochs=1, verbose=0)
        report.update(ok=True, loss=float(history.history["loss"][-1]))
    except Exception as e:  # the trap: record it
        report.update(
            ok=False, error=f"{type(e).__name__}: {_first_lines(str(e), 1)}", where=_where(e)
        )
    Path(job["report"].format(_worker_index())).write_text(json.dumps(report))
    return 0


def _where(e: BaseException) -> str:
    """The three deepest Keras frames of an exception's traceback (``keras/src/…py:LINE name``)."""
    import traceback

    frames = [
        f
        for f in traceback.extract_tb(e.__traceback__)
        if "keras/src/" in f.filename and "traceback_utils" not in f.filename
    ]
    return " → ".join(
        f"keras/src/{f.filename.split('keras/src/')[-1]}:{f.lineno} {f.name}" for f in frames[-3:]
    )


def data_parallel_trap(devices: int = 2) -> dict[str, Any]:
    """Trap (d), lesson 14 §9: ``keras.distribution.DataParallel`` on the TensorFlow backend.

    Sets a ``DataParallel`` distribution over ``devices`` logical devices (accepted without a
    word), builds and fits a small model, and reports what happened: the variables are plain
    ``tf.Variable``s on one device (not mirrored), and ``fit`` ran under the default strategy with
    one replica. Keras' distribution API is implemented for JAX; its TensorFlow module says
    "DO NOT USE … just a prototype" (``keras/src/backend/tensorflow/distribution_lib.py``).
    """
    names = split_cpu(devices) if not tf.config.list_physical_devices("GPU") else None
    listed = keras.distribution.list_devices()
    dp = keras.distribution.DataParallel(devices=listed[:devices])
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(dp)
    try:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.compile(optimizer="sgd", loss="mse")
        x = np.ones((8, 4), np.float32)
        model.fit(x, np.ones((8, 3), np.float32), batch_size=8, epochs=1, verbose=0)
        kernel = model.weights[0].value
        result = {
            "backend": keras.backend.backend(),
            "logical_devices": names or listed,
            "distribution_set": repr(keras.distribution.distribution()),
            "variable_type": type(kernel).__name__,
            "variable_device": kernel.device,
            "variable_is_distributed": isinstance(kernel, tf.distribute.DistributedValues),
            "fit_strategy": type(model.distribute_strategy).__name__,
            "fit_replicas": model.distribute_strategy.num_replicas_in_sync,
        }
    finally:
        keras.distribution.set_distribution(previous)
    return result


# ----------------------------------------------------------------------------------- the command
def run_command_line(
    strategy: str,
    steps: int,
    devices: int | None = None,
    workers: int = 2,
    compare: bool = False,
    seed: int | None = None,
    out: Path | str | None = None,
    timeout: float = 3600.0,
    batch_size: int = BABY_TRAIN.batch_size,
) -> int:
    """``python -m lessons_lib.training --strategy …`` (lesson 14 §9; README "Training on several
    devices or machines").

    Trains the baby GPT on Tiny Shakespeare (lesson 09's run, same seeds and global batches) under
    ``strategy``: ``"mirrored"`` on ``devices`` replicas (GPUs, else logical CPUs);
    ``"multi-worker"`` either as one worker of a cluster described by ``TF_CONFIG`` (run the same
    command on every machine) or, without ``TF_CONFIG``, as a launcher of ``workers`` local
    processes. With ``compare`` it also trains on one device and prints the largest differences of
    the losses and weights instead. The chief writes the checkpoint to ``out`` if given.
    ``batch_size`` is the global batch, a multiple of the number of replicas.
    """
    from lessons_lib.env import setup
    from lessons_lib.training import BABY_GPT, evaluate_loss

    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    steps = positive_int(steps, "steps")
    in_cluster = strategy == "multi-worker" and bool(os.environ.get("TF_CONFIG"))
    if in_cluster and compare:
        raise ValueError(
            "--compare starts its own local workers: run it without TF_CONFIG in the environment"
        )
    # the strategy first: logical CPUs and the cluster must exist before TensorFlow starts
    s = None
    if strategy == "mirrored" or in_cluster or (strategy == "default" and not compare):
        s = make_strategy(strategy, devices if strategy == "mirrored" else None, timeout)
    setup(seed=seed or 0, verbose=not in_cluster or _worker_index() == 0)
    train, val = shakespeare_splits()
    cfg = dataclasses.replace(
        BABY_TRAIN,
        max_steps=steps,
        seed=BABY_TRAIN.seed if seed is None else seed,
        batch_size=positive_int(batch_size, "batch_size"),
    )
    chief = not in_cluster or _worker_index() == 0
    if compare:
        r = compare_with_single_device(
            strategy, steps, BABY_GPT, cfg, train, devices or 2, workers, timeout=timeout
        )
        print(
            f"{strategy} ({r['replicas']} replicas, global batch {cfg.batch_size}) vs one device, "
            f"{steps} steps: max |loss difference| {r['max_loss_diff']:.2e}, "
            f"max |weight difference| {r['max_weight_diff']:.2e}",
            flush=True,
        )
        return 0
    t0 = time.perf_counter()
    if strategy == "multi-worker" and not in_cluster:
        print(f"starting {workers} workers on 127.0.0.1 ...", flush=True)
        result = launch_workers(workers, BABY_GPT, cfg, steps, train, timeout=timeout)
        model = BABY_GPT.build(seed=0)
        model.set_weights(result["weights"])
        losses, replicas = result["losses"], workers
    else:
        trainer = DistributedTrainer(BABY_GPT, train, cfg, s, model_seed=seed or 0)
        every = max(1, steps // 10)

        def report(t):
            if chief and (t.steps_done % every == 0 or t.steps_done == steps):
                print(f"step {t.steps_done}: train {t.losses[-1]:.4f}", flush=True)

        trainer.fit(steps, callback=report)
        model, losses, replicas = trainer.model, trainer.losses, trainer.replicas
    wall = time.perf_counter() - t0
    if not chief:
        return 0
    val_loss = evaluate_loss(model, val)
    print(
        f"{strategy}, {replicas} replica(s): {steps} steps in {wall:.1f} s; last train loss "
        f"{losses[-1]:.4f}; val loss {val_loss:.4f}",
        flush=True,
    )
    if out is not None:
        save_checkpoint(
            model,
            out,
            {
                "val_loss": round(val_loss, 4),
                "steps": steps,
                "strategy": strategy,
                "replicas": replicas,
                "command": "python -m lessons_lib.training " + " ".join(sys.argv[1:]),
                "train_config": dataclasses.asdict(cfg),
            },
        )
        print(f"wrote {out}", flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["worker"]:
        raise SystemExit(_run_worker())
    if sys.argv[1:] == ["fit-trap"]:
        raise SystemExit(_run_fit_trap())
    raise SystemExit("usage: python -m lessons_lib.distributed worker (started by launch_workers)")
