"""Compressing the baby GPT (lesson 15), every variant measured in one run against float32 Keras:

1. quantization: Keras int8 / int4 (`lessons_lib.quantization.quantize_gpt`, the matrix products
   only) and LiteRT float32 / dynamic-range int8 / full-integer int8 (`export_litert`);
2. pruning: unstructured magnitude pruning at 30/50/70/90 % without fine-tuning, 50 % with a
   fine-tune that keeps the zeros (against the same fine-tune unpruned), and structured pruning of
   FFN neurons into a smaller GPT (d_ff 512 → 256 and 128), fine-tuned;
3. distillation: the student (`lessons_lib.distillation.STUDENT`, 7.5x fewer parameters) trained
   from the same initial weights on the same batches on the labels only, on the teacher only, and
   on both (temperature 1), and on the teacher only at temperature 2; the mixed student is also
   exported to LiteRT dynamic int8.

Every validation loss is on the whole validation split. Latencies are one forward pass of a batch
of 32 windows of 64 tokens (float32 Keras: the model's call in one ``tf.function``; LiteRT: the
interpreter with one thread per core), timed in interleaved rounds (every variant in turn, a few
calls each, the median over all), so that a slow moment of the machine hits every variant alike;
ratios are against the float32 Keras model measured in the same rounds.

    python benchmarks/bench_compression.py --json benchmarks/results/compression.json
    python benchmarks/bench_compression.py --smoke      # a minute: every line, tiny lengths

Lesson 15 §8 reads the JSON. The issue's targets are checked at the end (printed, and in the JSON).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

import lessons_lib  # noqa: F401  (first: TensorFlow without its load-time notices)
from lessons_lib import attention
from lessons_lib._backend import tf
from lessons_lib.distillation import STUDENT, STUDENT_TRAIN, DistillationTrainer
from lessons_lib.pruning import (
    MaskedTrainer,
    compressed_bytes,
    dense_bytes,
    ffn_neuron_importance,
    fine_tune_config,
    prune,
    prune_ffn,
)
from lessons_lib.quantization import (
    LiteRTModel,
    export_litert,
    file_bytes,
    litert_loss,
    quantize_gpt,
    weight_bytes,
)
from lessons_lib.training import (
    BABY_GPT,
    evaluate_loss,
    evaluation_windows,
    load_checkpoint,
    shakespeare_splits,
)

FULL = dict(
    max_windows=None, fine_tune_steps=200, distill_steps=600, eval_every=50, curve_windows=256,
    rounds=8, block=5, jit_compile=True,
)  # fmt: skip
SMOKE = dict(
    max_windows=32, fine_tune_steps=3, distill_steps=4, eval_every=2, curve_windows=8,
    rounds=1, block=1,
    jit_compile=False,  # a few steps: XLA's compilation would take longer than they do
)  # fmt: skip
BATCH = 32
MASK_FILL = -30.0


def teacher():
    """A fresh copy of the shipped baby GPT."""
    model = BABY_GPT.build()
    load_checkpoint(model)
    return model


def keras_forward(model):
    """One compiled forward pass, ``ids [32, 64] → logits`` as NumPy."""
    fn = tf.function(lambda ids: model(ids, training=False))
    return lambda ids: np.asarray(fn(ids))


def interleaved_seconds(runners: dict, x: np.ndarray, rounds: int, block: int) -> dict:
    """Median seconds of ``fn(x)`` for every runner, timed in interleaved rounds.

    Each round runs every variant in turn: one untimed call (so that the previous runtime's
    threads, TensorFlow's spinning ones included, have settled), then ``block`` timed calls. A slow
    moment of the machine therefore hits every variant alike.
    """
    for fn in runners.values():
        fn(x)  # warm-up: tracing, compilation, the interpreter's first allocation
    times: dict = {name: [] for name in runners}
    for _ in range(rounds):
        for name, fn in runners.items():
            fn(x)
            for _ in range(block):
                t0 = time.perf_counter()
                fn(x)
                times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(t)) for name, t in times.items()}


def measure(sizes: dict, out_dir: Path) -> dict:
    train, val = shakespeare_splits()
    mw = sizes["max_windows"]
    x = evaluation_windows(val, BABY_GPT.max_len)[0][:BATCH]
    calibration = evaluation_windows(train, BABY_GPT.max_len)[0][:64]
    variants: dict = {}
    runners: dict = {}

    def add(name, model=None, lite=None, loss=None, **extra):
        if lite is not None:
            row = dict(params=extra.pop("params"), bytes=lite.bytes, file_bytes=lite.bytes)
            row["loss"] = litert_loss(lite, val, max_windows=mw) if loss is None else loss
            runners[name] = lite
        else:
            params = extra.pop("params", None) or model.count_params()  # quantized: the float count
            row = dict(params=params, bytes=weight_bytes(model))
            row["file_bytes"] = file_bytes(model)
            row["loss"] = evaluate_loss(model, val, max_windows=mw) if loss is None else loss
            runners[name] = keras_forward(model)
        row.update(extra)
        variants[name] = row
        print(f"{name:36} {row['params']:>9,} params {row['bytes'] / 1e6:6.2f} MB "
              f"loss {row['loss']:.4f}", flush=True)  # fmt: skip

    # 1. quantization
    gpt = teacher()
    add("float32 (Keras)", gpt)
    xla = tf.function(lambda ids: gpt(ids, training=False), jit_compile=True)
    runners["float32 (Keras, XLA)"] = lambda ids: np.asarray(xla(ids))  # timed only: same weights
    for mode in ("int8", "int4"):
        model = teacher()
        quantize_gpt(model, mode)
        add(f"{mode} (Keras)", model, params=gpt.count_params())
    for mode in ("float32", "dynamic_int8", "full_int8"):
        path = export_litert(gpt, out_dir / f"{mode}.tflite", mode=mode, representative=calibration)
        add(f"LiteRT {mode}", lite=LiteRTModel(path), params=gpt.count_params())

    # the full-integer model's loss comes from the causal mask's −1e9 fill (lesson 15 §4): the same
    # export with a fill of −30, still far below every real score, so the float model is unchanged
    with mock.patch.object(attention, "MASKED_SCORE", MASK_FILL):
        np.testing.assert_allclose(
            keras_forward(teacher())(x), runners["float32 (Keras)"](x), atol=1e-4
        )
        path = export_litert(
            teacher(),
            out_dir / "full_int8_fill.tflite",
            mode="full_int8",
            representative=calibration,
        )
    mask_fill = dict(fill=MASK_FILL, loss=litert_loss(LiteRTModel(path), val, max_windows=mw))
    print(
        f"LiteRT full_int8 with a mask fill of {MASK_FILL:g}: loss {mask_fill['loss']:.4f}",
        flush=True,
    )

    # 2. pruning
    unstructured = {}
    for fraction in (0.3, 0.5, 0.7, 0.9):
        model = teacher()
        prune(model, fraction)
        unstructured[str(fraction)] = evaluate_loss(model, val, max_windows=mw)
        print(f"unstructured {fraction:.0%}: loss {unstructured[str(fraction)]:.4f}", flush=True)
    fine_tune = {}
    ft_cfg, jit = fine_tune_config(sizes["fine_tune_steps"]), sizes["jit_compile"]
    for label, fraction in (("pruned 50 %", 0.5), ("unpruned", None)):
        model = teacher()
        masks = prune(model, fraction) if fraction else None
        MaskedTrainer(model, masks, train, val, cfg=ft_cfg, jit_compile=jit).fit(
            sizes["fine_tune_steps"], eval_every=sizes["fine_tune_steps"], progress=False
        )
        fine_tune[label] = evaluate_loss(model, val, max_windows=mw)
        if fraction:
            add(
                "50 % pruned (unstructured), fine-tuned",
                model,
                loss=fine_tune[label],
                compressed_bytes=compressed_bytes(model),
                dense_file_bytes=dense_bytes(model),
            )
    print(f"fine-tune {sizes['fine_tune_steps']} steps: {fine_tune}", flush=True)
    structured = {}
    importance = ffn_neuron_importance(gpt, train)  # the activation score (lesson 15 §6)
    for keep in (256, 128):
        small = prune_ffn(gpt, keep, importance=importance)
        before = evaluate_loss(small, val, max_windows=mw)
        MaskedTrainer(small, None, train, val, cfg=ft_cfg, jit_compile=jit).fit(
            sizes["fine_tune_steps"], eval_every=sizes["fine_tune_steps"], progress=False
        )
        structured[str(keep)] = dict(before=before)
        add(f"FFN pruned to {keep}, fine-tuned", small, loss_before_fine_tune=before)
        structured[str(keep)]["after"] = variants[f"FFN pruned to {keep}, fine-tuned"]["loss"]

    # 3. distillation
    curves, students = {}, {}
    cfg = dataclasses.replace(
        STUDENT_TRAIN,
        max_steps=sizes["distill_steps"],
        decay_steps=sizes["distill_steps"],
        warmup_steps=max(1, sizes["distill_steps"] // 20),
    )
    runs = (("labels only", 0.0, 1.0), ("teacher only", 1.0, 1.0), ("mixed", 0.5, 1.0),
            ("teacher only, τ = 2", 1.0, 2.0))  # fmt: skip
    for label, alpha, tau in runs:
        student = STUDENT.build(seed=0)
        trainer = DistillationTrainer(
            student, gpt, train, val, cfg=cfg, temperature=tau, alpha=alpha, jit_compile=jit
        )
        h = trainer.fit(
            sizes["distill_steps"],
            eval_every=sizes["eval_every"],
            eval_windows=sizes["curve_windows"],
            progress=False,
        )
        curves[label] = dict(step=list(h["eval_step"]), val_loss=[float(v) for v in h["val_loss"]])
        students[label] = student
        add(f"student, {label}", student)
    path = export_litert(students["mixed"], out_dir / "student.tflite", mode="dynamic_int8")
    add("student, mixed + LiteRT dynamic_int8", lite=LiteRTModel(path),
        params=students["mixed"].count_params())  # fmt: skip

    # latencies, interleaved
    seconds = interleaved_seconds(runners, x, sizes["rounds"], sizes["block"])
    xla_seconds = seconds.pop("float32 (Keras, XLA)")
    base = variants["float32 (Keras)"]
    for name, row in variants.items():
        row["seconds"] = seconds[name]
        row["speedup"] = seconds["float32 (Keras)"] / seconds[name]
        row["size_ratio"] = base["bytes"] / row["bytes"]
        print(f"{name:36} {1e3 * row['seconds']:7.1f} ms  {row['speedup']:5.2f}x faster, "
              f"{row['size_ratio']:5.2f}x smaller", flush=True)  # fmt: skip

    deploy = variants["LiteRT dynamic_int8"]
    t_loss = base["loss"]
    small_models = {k: v for k, v in variants.items() if base["params"] / v["params"] >= 5}
    labels_only = variants["student, labels only"]["loss"]
    best = min(
        (k for k in small_models if k != "student, labels only"), key=lambda k: variants[k]["loss"]
    )
    targets = dict(
        deploy_speedup=deploy["speedup"],
        deploy_size_ratio=deploy["size_ratio"],
        deploy_loss_increase=deploy["loss"] - t_loss,
        deploy_ok=bool(
            deploy["speedup"] >= 3
            and deploy["size_ratio"] >= 3
            and deploy["loss"] - t_loss <= 0.005
        ),
        small_model=best,
        small_model_param_ratio=base["params"] / variants[best]["params"],
        small_model_gap_to_teacher=variants[best]["loss"] - t_loss,
        labels_only_gap_to_teacher=labels_only - t_loss,
        small_ok=bool(variants[best]["loss"] < labels_only),
    )
    return dict(
        variants=variants,
        pruning=dict(
            unstructured=unstructured,
            fine_tune=fine_tune,
            structured=structured,
            fine_tune_steps=sizes["fine_tune_steps"],
        ),  # fmt: skip
        distillation=dict(curves=curves, steps=sizes["distill_steps"]),
        targets=targets,
        full_int8_mask_fill=mask_fill,
        float32_xla=dict(seconds=xla_seconds, speedup=seconds["float32 (Keras)"] / xla_seconds),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny lengths: checks that it runs")
    p.add_argument("--json", help="write the figures here")
    a = p.parse_args(argv)
    t0 = time.time()
    tf.get_logger().setLevel(
        "ERROR"
    )  # one tf.function per variant: TensorFlow warns about retracing
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(SMOKE if a.smoke else FULL, Path(tmp))
    t = result["targets"]
    print(
        f"\nthe deployable int8 model (LiteRT dynamic range): {t['deploy_speedup']:.2f}x faster, "
        f"{t['deploy_size_ratio']:.2f}x smaller, loss {t['deploy_loss_increase']:+.4f} "
        f"-> target {'met' if t['deploy_ok'] else 'NOT met'}"
    )
    print(
        f"a {t['small_model_param_ratio']:.1f}x smaller model ({t['small_model']}): "
        f"{t['small_model_gap_to_teacher']:+.4f} from the teacher, labels only "
        f"{t['labels_only_gap_to_teacher']:+.4f} -> target {'met' if t['small_ok'] else 'NOT met'}"
    )
    xla = result["float32_xla"]
    print(
        f"(float32 Keras compiled with XLA: {1e3 * xla['seconds']:.1f} ms, {xla['speedup']:.2f}x "
        "the default tf.function; the ratios above are against the default)"
    )
    command = "python benchmarks/bench_compression.py" + (" --smoke" if a.smoke else "")
    if a.json:
        command += f" --json {a.json}"
        result["meta"] = dict(
            command=command,
            date=datetime.date.today().isoformat(),
            machine=f"{os.cpu_count()} CPUs, {platform.machine()}, TensorFlow {tf.__version__}",
            seconds=round(time.time() - t0),
        )
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
