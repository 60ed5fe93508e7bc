"""A scaling-law experiment: GPTs of 10 k … 1 M parameters on Tiny Shakespeare (lesson 14).

Kaplan et al. (2020, "Scaling Laws for Neural Language Models", eq. 1.1) found that the test loss
of a language model trained to convergence on enough data falls as a power law in N, the number of
non-embedding parameters (every parameter except the token and position tables):

    L(N) = (N_c / N)^α_N,   α_N ≈ 0.076,   N_c ≈ 8.8 × 10¹³ (non-embedding parameters)

and as a power law in the training compute along the compute-efficient frontier,
L(C_min) = (C_c / C_min)^α_C with α_C ≈ 0.050 (their eq. 1.3). The compute of training is

    C ≈ 6 N D   (FLOPs; D the number of training tokens: 2N per token forward, 4N backward)

(Kaplan et al. §2.1). Hoffmann et al. (2022, "Training Compute-Optimal Large Language Models",
"Chinchilla", eq. 2, fitted in their eq. 10) fit a loss with an irreducible term,

    L(N, D) = E + A / N^α + B / D^β,   E = 1.69, A = 406.4, B = 410.7, α = 0.34, β = 0.28,

and find that N and D should grow in equal proportion with the compute, N_opt ∝ C^0.5 and
D_opt ∝ C^0.5 (their Table 2): about 20 training tokens per parameter at the compute optimum
(their Table 3; Chinchilla itself has 70 B parameters trained on 1.4 T tokens). The baby GPT of
lesson 09 sees 2,000 × 12 × 64 = 1.54 M tokens for its 804,096 parameters: D / N ≈ 1.9, ten times
fewer tokens per parameter than that optimum.

Their losses are in nats per token of web text with BPE tokens; ours are nats per character of
Shakespeare, so only the exponents (not N_c or E) can be set beside ours. The experiment here trains
every size for the same number of steps (the same D), with one learning-rate rule for all sizes
(peak 1e-3 → 1e-4 by cosine decay over the run, the baby GPT's). The larger models are further
from convergence (their curves still fall at the end of the run, the smallest one's has nearly
flattened), so the fitted exponent is that of L(N) at a fixed D, not Kaplan's converged α_N.
Derived in lesson 14 §7.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lessons_lib._validate import describe, positive_int
from lessons_lib.cost import Architecture, training_compute
from lessons_lib.training import ROOT, ModelConfig, TrainConfig, Trainer, shakespeare_splits

#: The full sweep's results, written by ``python benchmarks/scaling_law.py`` (plotted in §7).
SCALING_LAW_JSON = ROOT / "benchmarks" / "results" / "scaling_law.json"

#: Kaplan et al. (2020) eq. 1.1: L(N) = (N_c / N)^α_N, N non-embedding parameters.
KAPLAN_ALPHA_N = 0.076
KAPLAN_N_C = 8.8e13
#: Kaplan et al. (2020) eq. 1.3: L(C_min) = (C_c / C_min)^α_C on the compute-efficient frontier.
KAPLAN_ALPHA_C = 0.050
#: Hoffmann et al. (2022) eq. 10: L(N, D) = E + A / N^α + B / D^β.
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
#: Hoffmann et al. (2022), Table 3: ~20 training tokens per parameter at the compute optimum.
CHINCHILLA_TOKENS_PER_PARAM = 20.0


def _gpt(d_model: int, num_heads: int, num_layers: int) -> ModelConfig:
    return ModelConfig(
        vocab_size=65,
        max_len=64,
        d_model=d_model,
        num_heads=num_heads,
        num_layers=num_layers,
        dropout=0.0,
        use_bias=False,
        tie_embeddings=True,
    )


#: Six GPTs from 10,080 to 804,096 parameters (the largest is lesson 09's baby GPT), about a
#: factor 2–3.5 apart in non-embedding parameters; heads of 12–32 dimensions. Lesson 14 §7.
SCALING_SIZES: tuple[ModelConfig, ...] = (
    _gpt(24, 2, 1),
    _gpt(32, 2, 2),
    _gpt(48, 3, 2),
    _gpt(64, 4, 3),
    _gpt(96, 4, 4),
    _gpt(128, 4, 4),
)


def _check_config(cfg: Any) -> ModelConfig:
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"cfg must be a lessons_lib.training.ModelConfig, got {describe(cfg)}")
    if cfg.d_model % cfg.num_heads:
        raise ValueError(
            f"num_heads must divide d_model, got d_model={cfg.d_model}, num_heads={cfg.num_heads}"
        )
    return cfg


def total_params(cfg: ModelConfig) -> int:
    """Every parameter of the GPT that ``cfg`` builds (`Architecture.params`; lesson 14 §1)."""
    return Architecture.of(_check_config(cfg)).params


def non_embedding_params(cfg: ModelConfig) -> int:
    """Kaplan's N: every parameter but the token table V·d and the position table max_len·d.

    N = L · (12 d² [+ 13 d with biases] + LayerNorms) + LN_f: the blocks and the final LayerNorm. An
    untied output matrix (d·V) is a vocabulary table too and is left out as well
    (`Architecture.non_embedding_params`). Lesson 14 §7.
    """
    return Architecture.of(_check_config(cfg)).non_embedding_params


def describe_config(cfg: ModelConfig) -> str:
    """A short name such as ``"d24·L1·h2"`` for plots and tables (lesson 14 §7)."""
    cfg = _check_config(cfg)
    return f"d{cfg.d_model}·L{cfg.num_layers}·h{cfg.num_heads}"


@dataclasses.dataclass(frozen=True)
class SizeResult:
    """One trained size (lesson 14 §7): its counts, the budget it used and its validation losses.

    ``tokens`` D = steps · batch_size · max_len, ``compute`` C = 6 · N · D with N the non-embedding
    parameters (Kaplan's convention); ``eval_steps``/``eval_tokens``/``eval_compute``/``val_curve``
    are the curve (loss on the first ``eval_windows`` fixed validation windows); ``val_loss`` is the
    final loss on the fixed validation slice of ``final_windows`` windows (``None``: all of them).
    """

    name: str
    config: dict
    seed: int
    steps: int
    batch_size: int
    learning_rate: float
    params: int
    non_embedding_params: int
    tokens: int
    compute: float
    initial_val_loss: float
    eval_steps: list[int]
    eval_tokens: list[int]
    eval_compute: list[float]
    val_curve: list[float]
    val_loss: float
    eval_windows: int | None
    final_windows: int | None
    wall_s: float

    @property
    def tokens_per_param(self) -> float:
        """D / N with N all parameters: Chinchilla's ratio (≈ 20 at its compute optimum)."""
        return self.tokens / self.params

    def to_dict(self) -> dict:
        """A JSON-ready dict (with ``tokens_per_param`` added)."""
        return {**dataclasses.asdict(self), "tokens_per_param": self.tokens_per_param}


def _train_config(steps: int, batch_size: int, seed: int, learning_rate: float) -> TrainConfig:
    """The baby GPT's optimiser with the schedule stretched over ``steps`` (lesson 14 §7)."""
    return TrainConfig(
        batch_size=batch_size,
        max_steps=steps,
        learning_rate=learning_rate,
        min_learning_rate=learning_rate / 10,
        warmup_steps=min(100, steps // 10),
        decay_steps=steps,
        seed=seed,
    )


def train_size(
    cfg: ModelConfig,
    train: np.ndarray,
    val: np.ndarray,
    steps: int,
    batch_size: int = 12,
    seed: int = 0,
    eval_every: int | None = None,
    eval_windows: int | None = 200,
    final_windows: int | None = None,
    learning_rate: float = 1e-3,
    jit_compile: bool = False,
) -> SizeResult:
    """Train one size for ``steps`` steps and measure its validation loss (lesson 14 §7).

    The model is ``cfg.build(seed)`` (GPT-2 initialisation), trained by `Trainer` on random windows
    of ``train`` (seeded by ``seed``) with AdamW, a warm-up of min(100, steps / 10) steps and a
    cosine decay from ``learning_rate`` to ``learning_rate / 10`` over ``steps``: one rule for all
    sizes. Every ``eval_every`` steps (default: steps / 10) and at the end the loss on the first
    ``eval_windows`` fixed validation windows is recorded with the tokens D = step · batch_size ·
    max_len and compute C = 6 N D seen so far; the final ``val_loss`` is `evaluate_loss` over the
    first ``final_windows`` windows of ``val`` (all by default).
    """
    cfg = _check_config(cfg)
    steps = positive_int(steps, "steps")
    batch_size = positive_int(batch_size, "batch_size")
    eval_every = (
        max(1, steps // 10) if eval_every is None else positive_int(eval_every, "eval_every")
    )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(learning_rate, bool) or not (
        isinstance(learning_rate, (int, float)) and learning_rate > 0
    ):
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
    for name, w in (("eval_windows", eval_windows), ("final_windows", final_windows)):
        if w is not None:
            positive_int(w, name)
    n, n_total = non_embedding_params(cfg), total_params(cfg)
    per_step = batch_size * cfg.max_len

    t0 = time.perf_counter()
    model = cfg.build(seed=int(seed))
    assert model.count_params() == n_total, (model.count_params(), n_total)
    tcfg = _train_config(steps, batch_size, int(seed), float(learning_rate))
    trainer = Trainer(model, train, val, tcfg, jit_compile=jit_compile)
    initial = trainer.evaluate("val", eval_windows)
    eval_steps, curve = [], []
    for s in range(1, steps + 1):
        trainer.step()
        if s % eval_every == 0 or s == steps:
            eval_steps.append(s)
            curve.append(trainer.evaluate("val", eval_windows))
    final = trainer.evaluate("val", final_windows)  # evaluate_loss with the compiled loss
    wall = time.perf_counter() - t0
    return SizeResult(
        name=describe_config(cfg),
        config=dataclasses.asdict(cfg),
        seed=int(seed),
        steps=steps,
        batch_size=batch_size,
        learning_rate=float(learning_rate),
        params=n_total,
        non_embedding_params=n,
        tokens=steps * per_step,
        compute=training_compute(n, steps * per_step),
        initial_val_loss=float(initial),
        eval_steps=eval_steps,
        eval_tokens=[s * per_step for s in eval_steps],
        eval_compute=[training_compute(n, s * per_step) for s in eval_steps],
        val_curve=[float(v) for v in curve],
        val_loss=float(final),
        eval_windows=eval_windows,
        final_windows=final_windows,
        wall_s=wall,
    )


def _positive_pairs(x: Any, y: Any, min_points: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.asarray(x), np.asarray(y)
    for name, a in (("x", xs), ("y", ys)):
        if a.dtype == bool or not np.issubdtype(a.dtype, np.number):
            raise TypeError(f"{name} must hold numbers, got {describe(a)}")
        if a.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if xs.shape != ys.shape:
        raise ValueError(f"x and y must have the same length, got {len(xs)} and {len(ys)}")
    if len(xs) < min_points:
        raise ValueError(f"need at least {min_points} points to fit, got {len(xs)}")
    xs, ys = xs.astype(np.float64), ys.astype(np.float64)
    for name, a in (("x", xs), ("y", ys)):
        if not np.all(np.isfinite(a)) or np.any(a <= 0):
            raise ValueError(f"{name} must be finite and positive (log-log fit), got {a.tolist()}")
    if np.ptp(np.log(xs)) == 0:
        raise ValueError(f"x must take at least two different values, got {xs.tolist()}")
    return xs, ys


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Fit y = a · x^(−α) by least squares in log–log space; returns ``(a, α)`` (lesson 14 §7).

    log y = log a − α log x is a straight line: NumPy's degree-1 ``polyfit`` of log y on log x gives
    the slope −α and the intercept log a. ``x`` and ``y`` must be 1-D, of the same length, ≥ 2
    points, finite and positive, with at least two different x.
    """
    xs, ys = _positive_pairs(x, y, 2)
    slope, intercept = np.polyfit(np.log(xs), np.log(ys), 1)
    return float(math.exp(intercept)), float(-slope)


def fit_power_law_offset(
    x: Sequence[float], y: Sequence[float], grid: int = 2000
) -> tuple[float, float, float]:
    """Fit y = E + a · x^(−α) with an irreducible loss E ≥ 0; returns ``(E, a, α)`` (lesson 14 §7).

    Chinchilla's form in one variable. For each E on a grid of ``grid`` values in [0, min y) the
    power law of y − E is fitted in log–log space (`fit_power_law`); the E whose curve has the least
    squared error in y wins. Needs ≥ 3 points. With a few points E is poorly determined: read it as
    an illustration, the plain power law as the measurement.
    """
    xs, ys = _positive_pairs(x, y, 3)
    grid = positive_int(grid, "grid")
    best: tuple[float, float, float, float] | None = None
    for e in np.linspace(0.0, ys.min(), grid, endpoint=False):
        a, alpha = fit_power_law(xs, ys - e)
        sse = float(np.sum((e + a * xs ** (-alpha) - ys) ** 2))
        if best is None or sse < best[0]:
            best = (sse, float(e), a, alpha)
    assert best is not None
    return best[1], best[2], best[3]


def compute_frontier(results: Sequence[SizeResult | dict]) -> tuple[list[float], list[float]]:
    """The compute frontier: the curve points no cheaper point beats (lesson 14 §7).

    All ``(eval_compute, val_curve)`` points of all results, sorted by compute; a point is kept when
    its loss is lower than that of every point of less (or equal) compute. For a budget C the
    frontier's last point at or below C is the lowest loss any size reached with C. Returns
    ``(compute, loss)`` lists.
    """
    points = []
    for r in results:
        d = r.to_dict() if isinstance(r, SizeResult) else r
        points += list(zip(d["eval_compute"], d["val_curve"]))
    if not points:
        raise ValueError("results hold no curve points")
    points.sort(key=lambda p: (p[0], p[1]))
    cs, ls = [], []
    for c, loss in points:
        if not ls or loss < ls[-1]:
            cs.append(float(c))
            ls.append(float(loss))
    return cs, ls


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """What a sweep trains (lesson 14 §7): sizes, steps per size, batch, seeds, learning rate."""

    configs: tuple[ModelConfig, ...]
    steps: int
    batch_size: int = 12
    seeds: tuple[int, ...] = (0,)
    learning_rate: float = 1e-3
    eval_every: int | None = None
    eval_windows: int | None = 200
    final_windows: int | None = None
    jit_compile: bool = False


#: The lesson's default run (lesson 14 §7): the 4 smallest sizes × 300 steps, no XLA (compiling
#: costs more than it saves on runs this short), the final loss on the first 500 validation windows.
LESSON_SWEEP = SweepConfig(
    configs=SCALING_SIZES[:4], steps=300, eval_every=50, eval_windows=100, final_windows=500
)
#: The full sweep of ``benchmarks/scaling_law.py`` (its defaults): all 6 sizes × 2,000 steps.
FULL_SWEEP = SweepConfig(
    configs=SCALING_SIZES, steps=2000, eval_every=100, eval_windows=200, jit_compile=True
)


def sweep(
    configs: Sequence[ModelConfig] | SweepConfig,
    steps: int | None = None,
    train: np.ndarray | None = None,
    val: np.ndarray | None = None,
    callback: Callable[[SizeResult], Any] | None = None,
    **kwargs: Any,
) -> list[SizeResult]:
    """Train every size in ``configs`` (for every seed) with `train_size` (lesson 14 §7).

    ``configs`` is a list of `ModelConfig` (then give ``steps``; the other `train_size` arguments
    and ``seeds`` go in ``kwargs``) or a `SweepConfig` such as ``LESSON_SWEEP``. ``train``/``val``
    default to Tiny Shakespeare's 90 / 10 % split in characters. ``callback(result)`` runs after
    each size (to print or save). Returns the results, size-major.
    """
    if isinstance(configs, SweepConfig):
        if steps is not None or kwargs:
            raise TypeError("with a SweepConfig, give no steps or other training arguments")
        sc = configs
        kwargs = {
            "batch_size": sc.batch_size,
            "learning_rate": sc.learning_rate,
            "eval_every": sc.eval_every,
            "eval_windows": sc.eval_windows,
            "final_windows": sc.final_windows,
            "jit_compile": sc.jit_compile,
        }
        configs, steps, seeds = sc.configs, sc.steps, sc.seeds
    else:
        if steps is None:
            raise TypeError("give steps (or pass a SweepConfig)")
        seeds = tuple(kwargs.pop("seeds", (0,)))
    configs = [_check_config(c) for c in configs]
    if not configs:
        raise ValueError("configs is empty: give at least one ModelConfig")
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    if train is None or val is None:
        train, val = shakespeare_splits()
    results = []
    for cfg in configs:
        for seed in seeds:
            r = train_size(cfg, train, val, steps, seed=seed, **kwargs)
            results.append(r)
            if callback is not None:
                callback(r)
    return results


def mean_final_losses(results: Sequence[SizeResult | dict]) -> dict[str, dict]:
    """Per size (by name, in order): N, total params, D, C and the final loss averaged over seeds.

    Lesson 14 §7 fits the power law to these means.
    """
    out: dict[str, dict] = {}
    for r in results:
        d = r.to_dict() if isinstance(r, SizeResult) else r
        e = out.setdefault(
            d["name"],
            {
                "params": d["params"],
                "non_embedding_params": d["non_embedding_params"],
                "tokens": d["tokens"],
                "compute": d["compute"],
                "tokens_per_param": d["tokens"] / d["params"],
                "val_losses": [],
            },
        )
        e["val_losses"].append(d["val_loss"])
    for e in out.values():
        e["val_loss"] = float(np.mean(e["val_losses"]))
    return out
