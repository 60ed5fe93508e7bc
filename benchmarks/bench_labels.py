"""Pretraining vs labels (lesson 11 §7): fine-tune lesson 11's encoder from the shipped masked-LM
checkpoint and from scratch with 1 %, 10 % and 100 % of the SMS training labels, several seeds;
test accuracy and spam F1 of every run, written to JSON for the lesson to plot.

    python benchmarks/bench_labels.py [--seeds 0 1 2 3 4] [--fractions 0.01 0.1 1]
        [--json benchmarks/results/bench_labels_sms.json]

Protocol (the same as the lesson's reduced sweep): the labelled subset is a stratified sample of
the training split (`lessons_lib.data.stratified_split`, seeded); both arms are the same
`SequenceClassifier` ([CLS] pooling, `SMS_MLM`'s encoder sizes), one starting from
`SMS_MLM_CHECKPOINT` (pretrained on the training messages without their labels), the other from a
random initialisation; both are trained by `fit_classifier` for `EPOCHS[fraction]` epochs with the
same optimiser and no early stopping (with 1 % of the labels there is no labelled validation set to
stop on); both are scored on the whole test split.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import lessons_lib  # noqa: E402  (first: it imports TensorFlow without the load-time notice)
from lessons_lib import (  # noqa: E402
    LABELS_SWEEP_JSON,
    SMS_MLM,
    SMS_MLM_CHECKPOINT,
    SequenceClassifier,
    encode_texts,
    fit_classifier,
    load_sms_spam,
)
from lessons_lib._backend import keras, tf  # noqa: E402
from lessons_lib.data import stratified_split  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = LABELS_SWEEP_JSON
#: Epochs of fine-tuning per share of the labels: about the same number of optimiser steps for
#: the two small shares, 3 epochs (where §5's early stopping ends) for all the labels.
EPOCHS = {0.01: 60, 0.1: 12, 1.0: 3}
LEARNING_RATE = 1e-3
BATCH_SIZE = 32


def labelled_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of a stratified ``fraction`` of the training examples (all of them for 1.0)."""
    if fraction >= 1:
        return np.arange(len(labels))
    return stratified_split(labels, (fraction, 1 - fraction), seed=seed)[0]


def run_one(arm: str, fraction: float, seed: int, train, test, tokenizer) -> dict:
    """Fine-tune one arm ("pretrained" or "scratch") on one labelled subset; score it on test."""
    from sklearn.metrics import accuracy_score, f1_score

    x, y = train
    idx = labelled_subset(y, fraction, seed)
    keras.utils.set_random_seed(seed)
    if arm == "pretrained":
        model = SequenceClassifier.from_pretrained(SMS_MLM_CHECKPOINT, 2, tokenizer=tokenizer)
    else:
        model = SequenceClassifier(SMS_MLM.encoder(tokenizer.vocab_size), 2)
    epochs = EPOCHS[fraction] if fraction in EPOCHS else max(3, round(0.6 / fraction))
    t0 = time.perf_counter()
    fit_classifier(
        model, x[idx], y[idx], epochs=epochs, batch_size=BATCH_SIZE, learning_rate=LEARNING_RATE
    )
    seconds = time.perf_counter() - t0
    pred = model.predict(test[0], batch_size=256, verbose=0).argmax(-1)
    return {
        "arm": arm,
        "fraction": fraction,
        "seed": seed,
        "labels": int(len(idx)),
        "spam_labels": int(y[idx].sum()),
        "epochs": epochs,
        "test_accuracy": round(float(accuracy_score(test[1], pred)), 4),
        "test_f1_spam": round(float(f1_score(test[1], pred, zero_division=0.0)), 4),
        "seconds": round(seconds, 1),
    }


def summarise(runs: list[dict]) -> list[dict]:
    """Mean, sd, min and max of accuracy and F1 per (fraction, arm)."""
    out = []
    for fraction in sorted({r["fraction"] for r in runs}):
        for arm in ("scratch", "pretrained"):
            rs = [r for r in runs if r["fraction"] == fraction and r["arm"] == arm]
            if not rs:
                continue
            row = {"fraction": fraction, "arm": arm, "labels": rs[0]["labels"], "runs": len(rs)}
            for key in ("test_accuracy", "test_f1_spam"):
                v = [r[key] for r in rs]
                row[key] = {
                    "mean": round(statistics.mean(v), 4),
                    "sd": round(statistics.stdev(v), 4) if len(v) > 1 else 0.0,
                    "min": min(v),
                    "max": max(v),
                }
            out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    p.add_argument(
        "--json", type=Path, default=None, help=f"write the results (e.g. {DEFAULT_JSON})"
    )
    a = p.parse_args(argv)
    info = lessons_lib.setup(seed=0, verbose=False)
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {info.device}; "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, Python {sys.version.split()[0]}",
        flush=True,
    )
    data = load_sms_spam(progress=False)
    tok = SMS_MLM.tokenizer(data.train.texts)
    train = (encode_texts(tok, data.train.texts, SMS_MLM.max_len)[0], np.asarray(data.train.labels))
    test = (encode_texts(tok, data.test.texts, SMS_MLM.max_len)[0], np.asarray(data.test.labels))
    meta = json.loads(Path(str(SMS_MLM_CHECKPOINT) + ".json").read_text())
    runs = []
    t0 = time.perf_counter()
    for seed in a.seeds:
        for fraction in a.fractions:
            for arm in ("scratch", "pretrained"):
                r = run_one(arm, fraction, seed, train, test, tok)
                runs.append(r)
                print(
                    f"{arm:10} {fraction:>5.0%} of the labels ({r['labels']:>4}, "
                    f"{r['spam_labels']:>3} spam) seed {seed}: test accuracy "
                    f"{r['test_accuracy']:.4f}, spam F1 {r['test_f1_spam']:.4f} "
                    f"({r['epochs']} epochs, {r['seconds']:.0f} s)",
                    flush=True,
                )
    summary = summarise(runs)
    for row in summary:
        acc, f1 = row["test_accuracy"], row["test_f1_spam"]
        print(
            f"{row['arm']:10} {row['fraction']:>5.0%}: accuracy {acc['mean']:.4f} ± {acc['sd']:.4f}"
            f" | spam F1 {f1['mean']:.4f} ± {f1['sd']:.4f} ({row['runs']} seeds)"
        )
    wall = time.perf_counter() - t0
    print(f"{len(runs)} runs in {wall:.0f} s")
    if a.json is not None:
        command = "python benchmarks/bench_labels.py" + "".join(
            f" {flag} " + " ".join(str(v) for v in vals)
            for flag, vals, default in (
                ("--seeds", a.seeds, [0, 1, 2, 3, 4]),
                ("--fractions", a.fractions, [0.01, 0.1, 1.0]),
            )
            if vals != default
        )
        shown = a.json.resolve()
        shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
        command += f" --json {shown}"
        result = {
            "command": command,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {info.device}",
            "date": datetime.date.today().isoformat(),
            "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
            "protocol": {
                "epochs": {str(k): v for k, v in EPOCHS.items()},
                "learning_rate": LEARNING_RATE,
                "batch_size": BATCH_SIZE,
                "pooling": "cls",
                "encoder": meta["config"],
                "early_stopping": False,
                "test_messages": int(len(test[1])),
            },
            "checkpoint": {
                "path": str(SMS_MLM_CHECKPOINT.relative_to(ROOT)),
                "command": meta["command"],
                "val_masked_accuracy": meta["val_masked_accuracy"],
            },
            "wall_seconds": round(wall, 1),
            "runs": runs,
            "summary": summary,
        }
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
