"""The benchmark scripts keep running: a short run of each prints every figure the README quotes
from it.

Speed itself is never asserted here (timings on a shared CI machine are noise); the scripts print
ratios measured in one run, and the README reports them with the command.
"""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_gpt_prints_every_ratio():
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks/bench_gpt.py"),
            "--steps",
            "10",
            "--warmup",
            "2",
            "--repeats",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    out = r.stdout
    assert "parameters: 804,096 (both models)" in out
    assert re.search(
        r"lessons_lib GPT [\d.]+ ms \| keras\.layers GPT [\d.]+ ms \| ratio ours/keras [\d.]+", out
    ), out
    assert re.search(r"without XLA .*: [\d.]+ ms \| XLA speed-up [\d.]+x", out), out
    assert re.search(
        r"-> ours sustains \d+ GFLOP/s; chained products .* run at \d+ GFLOP/s "
        r"\(step time at that rate: [\d.]+ ms\)",
        out,
    ), out
    for n in (64, 256):
        assert re.search(
            rf"generate {n} tokens: no cache \d+ tok/s \| KV cache \d+ tok/s \| speed-up [\d.]+x",
            out,
        ), out


def test_train_step_flops_formula():
    """The FLOP count the benchmark divides by, against the products counted one by one for the baby
    GPT."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_gpt import train_step_flops
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    tokens, d, t = 12 * 64, 128, 64
    per_block = (
        4 * (tokens * d * d) + tokens * d * 512 + tokens * 512 * d + 2 * (12 * 4 * t * t * (d // 4))
    )
    forward = 2 * (4 * per_block + tokens * d * 65)
    assert train_step_flops() == 3 * forward


def _run_benchmark(*args: str) -> str:
    r = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=900, cwd=ROOT
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r.stdout


def test_bench_labels_runs_one_cell_and_writes_what_lesson_11_reads(tmp_path):
    """One seed, 1 % of the labels (45 messages): both arms, the summary and the JSON lesson 11 §7
    plots (same keys as the shipped benchmarks/results/bench_labels_sms.json)."""
    import json

    out = tmp_path / "labels.json"
    stdout = _run_benchmark(
        "benchmarks/bench_labels.py", "--seeds", "0", "--fractions", "0.01", "--json", str(out)
    )
    for arm in ("scratch", "pretrained"):
        assert re.search(
            rf"{arm} +1% of the labels \(  45, +\d+ spam\) seed 0: "
            r"test accuracy [\d.]+, spam F1 [\d.]+",
            stdout,
        ), stdout
        assert re.search(rf"{arm} +1%: accuracy [\d.]+ ± [\d.]+ \| spam F1 [\d.]+ ± ", stdout)
    result = json.loads(out.read_text())
    shipped = json.loads((ROOT / "benchmarks/results/bench_labels_sms.json").read_text())
    assert result.keys() == shipped.keys() and result["protocol"] == shipped["protocol"]
    assert result["command"].endswith("--seeds 0 --fractions 0.01 --json " + str(out))
    assert [(r["arm"], r["labels"]) for r in result["runs"]] == [
        ("scratch", 45),
        ("pretrained", 45),
    ]


def test_qa_plateau_runs_one_epoch_and_records_the_curve(tmp_path):
    """One seed, one epoch of lesson 12's recipe: the curve every 50 steps with the agreement with
    the rules, as lesson 12 §5 reads it from benchmarks/results/qa_plateau.json."""
    import json

    out = tmp_path / "plateau.json"
    stdout = _run_benchmark(
        "benchmarks/qa_plateau.py", "--seeds", "1", "--epochs", "1", "--out", str(out)
    )
    assert re.search(r"seed 1: 1 epochs, val exact match [\d.]+ after \d+ s of training", stdout)
    result = json.loads(out.read_text())
    assert result["command"] == "python benchmarks/qa_plateau.py --seeds 1 --epochs 1"
    (run,) = result["runs"]
    steps = [row["step"] for row in run["curve"]]
    assert steps[:3] == [0, 50, 100] and steps[-1] == 282  # 282 batches of 32 in one epoch
    assert {"val_exact_match", "agrees_last sentence", "agrees_first mention"} <= run["curve"][
        -1
    ].keys()


def test_bench_cost_smoke_prints_every_figure_and_writes_what_lesson_14_reads(tmp_path):
    """Tiny sizes: every line of the three measurements, and the JSON keys lesson 14 plots (the same
    as in the shipped benchmarks/results/cost.json)."""
    import json

    out = tmp_path / "cost.json"
    stdout = _run_benchmark("benchmarks/bench_cost.py", "--smoke", "--json", str(out))
    assert re.search(
        r"step  d=  16 L=1 T=  16: +[\d.]+ ms, +[\d.]+ GFLOP -> +[\d.]+ GFLOP/s", stdout
    )
    assert re.search(
        r"attention T=  256: +[\d.]+ ms, peak \+ *[\d.]+ MiB \(scores +1\.0 MiB\)", stdout
    )
    assert re.search(r"attention slopes \(T >= \d+\): time -?[\d.]+, memory -?[\d.]+", stdout)
    assert re.search(r"fwd\+bwd T= +16: GRU +[\d.]+ ms \| Transformer block +[\d.]+ ms", stdout)
    made = json.loads(out.read_text())
    shipped = json.loads((ROOT / "benchmarks/results/cost.json").read_text())
    assert set(made) == set(shipped) == {"steps", "attention", "recurrent", "meta"}
    for key in ("attention", "recurrent", "meta"):
        assert set(made[key]) == set(shipped[key]), key
    assert set(made["steps"][0]) == set(shipped["steps"][0])
    assert (
        shipped["meta"]["command"]
        == "python benchmarks/bench_cost.py --json benchmarks/results/cost.json"
    )
    for row in shipped["steps"]:  # the shipped FLOPs are the formula's
        from lessons_lib.cost import Architecture
        from lessons_lib.training import ModelConfig

        cfg = ModelConfig(d_model=row["d_model"], num_layers=row["num_layers"], max_len=256)
        assert Architecture.of(cfg).training_flops(8, row["seq_len"]) == row["flops"]


def test_bench_compression_smoke_measures_every_variant_and_writes_what_lesson_15_reads(tmp_path):
    """A few steps and windows: every variant of lesson 15 is built, measured and timed, the two
    targets are evaluated, and the JSON has the keys lesson 15 §4, §7 and §8 read (the same as in
    the shipped benchmarks/results/compression.json)."""
    import json

    out = tmp_path / "compression.json"
    stdout = _run_benchmark("benchmarks/bench_compression.py", "--smoke", "--json", str(out))
    made = json.loads(out.read_text())
    shipped = json.loads((ROOT / "benchmarks/results/compression.json").read_text())
    assert set(made) == set(shipped)
    assert list(made["variants"]) == list(shipped["variants"])
    for name, row in made["variants"].items():
        assert set(row) >= {"params", "bytes", "loss", "seconds", "speedup", "size_ratio"}, name
        assert re.search(rf"{re.escape(name)} +[\d.]+ ms +[\d.]+x faster", stdout), name
    assert made["variants"]["float32 (Keras)"]["speedup"] == 1.0
    assert set(made["distillation"]["curves"]) == set(shipped["distillation"]["curves"])
    assert made["full_int8_mask_fill"]["fill"] == shipped["full_int8_mask_fill"]["fill"]
    assert re.search(r"the deployable int8 model .*-> target (met|NOT met)", stdout)
    assert made["meta"]["command"] == f"python benchmarks/bench_compression.py --smoke --json {out}"
