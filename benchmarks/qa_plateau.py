"""The plateau of lesson 12 §5, over several seeds: the span model's recipe (``BABI_QA``, the
recipe of ``python -m lessons_lib.qa``) trained once per seed, with the validation exact match
every ``eval_every`` steps and how often the model's answers agree with the rules of
`lessons_lib.qa.babi_rule_answers` ("last sentence": the plateau; "last mention": the task's rule).

    python benchmarks/qa_plateau.py [--seeds 1 2 3] [--epochs N] [--out PATH]

Writes ``benchmarks/results/qa_plateau.json``: the command, the configuration, the machine (CPU
count and load average: training times on a shared machine are inflated) and, per seed, the
curve and the per-epoch history. Lesson 12 §5 plots it beside the shipped checkpoint's own curve
(seed 0). Times are seconds of training, the evaluations left out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import lessons_lib  # noqa: F401  (first: it imports TensorFlow without the load-time notice)
from lessons_lib.data import load_babi
from lessons_lib.env import setup
from lessons_lib.qa import BABI_QA, QA_PLATEAU_JSON, train_qa_tokenizer, train_span_model

OUT = QA_PLATEAU_JSON
DEFAULT_SEEDS = [1, 2, 3]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=DEFAULT_SEEDS)
    p.add_argument("--epochs", type=int, default=BABI_QA.epochs)
    p.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args(argv)
    setup(seed=0)
    data = load_babi(task=1, progress=False)
    tokenizer = train_qa_tokenizer(data.train, BABI_QA.bpe_vocab)
    load = os.getloadavg()[0]
    runs = []
    for seed in a.seeds:
        cfg = dataclasses.replace(BABI_QA, seed=seed, epochs=a.epochs)
        t0 = time.perf_counter()
        _, _, evaluation, history = train_span_model(data, cfg, tokenizer=tokenizer)
        wall = time.perf_counter() - t0
        last = evaluation.curve[-1]
        print(
            f"seed {seed}: {len(history.history['loss'])} epochs, val exact match "
            f"{last['val_exact_match']:.3f} after {last['time']:.0f} s of training "
            f"({wall:.0f} s with the evaluations); load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        runs.append(
            {
                "seed": seed,
                "wall_seconds": round(wall, 1),
                "curve": evaluation.curve,
                "history": {k: [round(float(x), 4) for x in v] for k, v in history.history.items()},
            }
        )
    command = "python benchmarks/qa_plateau.py"
    if a.seeds != DEFAULT_SEEDS:
        command += " --seeds " + " ".join(map(str, a.seeds))
    if a.epochs != BABI_QA.epochs:
        command += f" --epochs {a.epochs}"
    result = {
        "command": command,
        "qa_config": dataclasses.asdict(BABI_QA),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": round(load, 2),
            "load_average_at_end": round(os.getloadavg()[0], 2),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "runs": runs,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {a.out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
