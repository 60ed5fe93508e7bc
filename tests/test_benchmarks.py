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
