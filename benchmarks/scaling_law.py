"""A scaling-law experiment on Tiny Shakespeare (lesson 14 §7): six GPTs from 10 k to 804 k
parameters, each trained for the same number of steps; validation loss against non-embedding
parameters and against compute, fitted power laws, written to JSON for the lesson to plot.

    python benchmarks/scaling_law.py [--steps 2000] [--seeds 0 1] [--sizes 0 1 2 3 4 5]
        [--json benchmarks/results/scaling_law.json] [--no-xla]

Protocol: `lessons_lib.scaling.train_size` for every size of `SCALING_SIZES` and every seed (seed
= initialisation and batch order), batches of 12 windows of 64 characters, AdamW with lr 1e-3 →
1e-4 (cosine over the run, warm-up min(100, steps/10)), the same for all sizes; the curve is the
loss on the first 200 fixed validation windows every 100 steps, the final loss on all windows of
the validation split. The fits: L = a · N^(−α) over the seed-mean final losses against the
non-embedding N, the same with an irreducible term, and L = a · C^(−α) over the compute frontier
(for each budget the lowest loss any size reached). The JSON is rewritten after every run, so an
interrupted sweep keeps what it finished (seed-major order: all sizes of seed 0 first).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import lessons_lib  # noqa: E402  (first: it imports TensorFlow without the load-time notice)
from lessons_lib._backend import keras, tf  # noqa: E402
from lessons_lib.scaling import (  # noqa: E402
    CHINCHILLA,
    CHINCHILLA_TOKENS_PER_PARAM,
    FULL_SWEEP,
    KAPLAN_ALPHA_C,
    KAPLAN_ALPHA_N,
    SCALING_LAW_JSON,
    SCALING_SIZES,
    compute_frontier,
    fit_power_law,
    fit_power_law_offset,
    mean_final_losses,
    shakespeare_splits,
    train_size,
)

DEFAULT_JSON = SCALING_LAW_JSON


def summarise(runs: list[dict]) -> dict:
    """Seed-mean final losses per size, the fits against N and against compute (lesson 14 §7)."""
    sizes = mean_final_losses(runs)
    out: dict = {"sizes": sizes}
    ns = [s["non_embedding_params"] for s in sizes.values()]
    losses = [s["val_loss"] for s in sizes.values()]
    if len(sizes) >= 2:
        a, alpha = fit_power_law(ns, losses)
        out["fit_vs_non_embedding_params"] = {"a": a, "alpha": alpha, "form": "L = a * N^-alpha"}
        tot = [s["params"] for s in sizes.values()]
        a, alpha = fit_power_law(tot, losses)
        out["fit_vs_total_params"] = {"a": a, "alpha": alpha, "form": "L = a * N_total^-alpha"}
    if len(sizes) >= 3:
        e, a, alpha = fit_power_law_offset(ns, losses)
        out["fit_vs_non_embedding_params_offset"] = {
            "E": e,
            "a": a,
            "alpha": alpha,
            "form": "L = E + a * N^-alpha",
        }
    cs, ls = compute_frontier(runs)
    out["compute_frontier"] = {"compute": cs, "val_loss": ls}
    if len(cs) >= 2:
        a, alpha = fit_power_law(cs, ls)
        out["fit_vs_compute_frontier"] = {"a": a, "alpha": alpha, "form": "L = a * C^-alpha"}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=FULL_SWEEP.steps)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--sizes", type=int, nargs="+", default=list(range(len(SCALING_SIZES))))
    p.add_argument("--eval-every", type=int, default=FULL_SWEEP.eval_every)
    p.add_argument("--eval-windows", type=int, default=FULL_SWEEP.eval_windows)
    p.add_argument("--no-xla", action="store_true")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON)
    a = p.parse_args(argv)
    lessons_lib.setup(seed=0)
    configs = [SCALING_SIZES[i] for i in a.sizes]
    train, val = shakespeare_splits()
    command = "python benchmarks/scaling_law.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    record: dict = {
        "command": command.strip(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "python": platform.python_version(),
        },
        "note": (
            "wall_s per run was measured on 2 shared CPU cores while other work ran: inflated and "
            "noisy, for orientation only. Compute C = 6 N D with N the non-embedding parameters. "
            "tokens_per_param = D / N_total (Chinchilla's ratio, ~20 at its compute optimum)."
        ),
        "protocol": {
            "steps": a.steps,
            "batch_size": FULL_SWEEP.batch_size,
            "max_len": configs[0].max_len,
            "learning_rate": FULL_SWEEP.learning_rate,
            "schedule": "warm-up min(100, steps/10), cosine to lr/10 at the last step",
            "eval_every": a.eval_every,
            "eval_windows": a.eval_windows,
            "final_windows": "all windows of the validation split",
            "xla": not a.no_xla,
            "seeds": a.seeds,
        },
        "published": {
            "kaplan_alpha_N": KAPLAN_ALPHA_N,
            "kaplan_alpha_C": KAPLAN_ALPHA_C,
            "chinchilla": CHINCHILLA,
            "chinchilla_tokens_per_param": CHINCHILLA_TOKENS_PER_PARAM,
        },
        "runs": [],
    }
    a.json.parent.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    for seed in a.seeds:  # seed-major: an interrupted sweep keeps complete seeds
        for cfg in configs:
            r = train_size(
                cfg,
                train,
                val,
                a.steps,
                batch_size=FULL_SWEEP.batch_size,
                seed=seed,
                eval_every=a.eval_every,
                eval_windows=a.eval_windows,
                final_windows=None,
                learning_rate=FULL_SWEEP.learning_rate,
                jit_compile=not a.no_xla,
            )
            record["runs"].append(r.to_dict())
            print(
                f"{r.name:>14} seed {seed}: N {r.non_embedding_params:>8,} (total {r.params:>8,})"
                f"  D/N {r.tokens_per_param:6.2f}  val loss {r.val_loss:.4f}  {r.wall_s:6.1f} s",
                flush=True,
            )
            record.update(summarise(record["runs"]))
            record["wall_s_total"] = time.perf_counter() - t_all
            a.json.write_text(json.dumps(record, indent=1) + "\n")
    for key in ("fit_vs_non_embedding_params", "fit_vs_compute_frontier"):
        if key in record:
            print(f"{key}: alpha = {record[key]['alpha']:.4f}, a = {record[key]['a']:.4g}")
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
