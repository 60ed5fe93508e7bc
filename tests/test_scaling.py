"""lessons_lib.scaling (lesson 14 §7): power-law fits, parameter counts, one size's bookkeeping,
and the shipped sweep's JSON checked against its own curves."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from lessons_lib.gpt import gpt_param_count
from lessons_lib.scaling import (
    FULL_SWEEP,
    LESSON_SWEEP,
    SCALING_LAW_JSON,
    SCALING_SIZES,
    SizeResult,
    SweepConfig,
    compute_frontier,
    fit_power_law,
    fit_power_law_offset,
    mean_final_losses,
    non_embedding_params,
    shakespeare_splits,
    sweep,
    total_params,
    train_size,
)
from lessons_lib.training import BABY_GPT, ModelConfig

TINY = ModelConfig(d_model=16, num_heads=2, num_layers=1)


# --- fits -----------------------------------------------------------------------------------------
def test_fit_power_law_recovers_a_known_exponent():
    x = np.logspace(3, 6, 7)
    a, alpha = fit_power_law(x, 3.2 * x**-0.3)
    assert a == pytest.approx(3.2, rel=1e-9) and alpha == pytest.approx(0.3, rel=1e-9)
    # with 1 % multiplicative noise the exponent stays within 0.01
    rng = np.random.default_rng(0)
    y = 5.0 * x**-0.076 * np.exp(rng.normal(0, 0.01, size=x.shape))
    a, alpha = fit_power_law(list(x), list(y))
    assert abs(alpha - 0.076) < 0.01 and abs(a - 5.0) / 5.0 < 0.2
    # two points define the line exactly; a rising curve has a negative exponent
    assert fit_power_law([10, 1000], [2.0, 0.2])[1] == pytest.approx(0.5)
    assert fit_power_law([1, 2, 4], [1, 2, 4])[1] == pytest.approx(-1.0)


@pytest.mark.parametrize(
    ("x", "y", "error", "match"),
    [
        ([1, 2, 3], [1, 2], ValueError, "same length"),
        ([1], [1], ValueError, "at least 2 points"),
        ([1, -2], [1, 2], ValueError, "x must be finite and positive"),
        ([1, 2], [1, 0], ValueError, "y must be finite and positive"),
        ([1, 2], [1, float("nan")], ValueError, "finite and positive"),
        ([3, 3], [1, 2], ValueError, "two different values"),
        ([[1, 2]], [[1, 2]], ValueError, "1-D"),
        (["a", "b"], [1, 2], TypeError, "x must hold numbers"),
        ([1, 2], [True, False], TypeError, "y must hold numbers"),
    ],
)
def test_fit_power_law_refuses_bad_input(x, y, error, match):
    with pytest.raises(error, match=match):
        fit_power_law(x, y)


def test_fit_power_law_offset_recovers_the_irreducible_term():
    x = np.logspace(3, 7, 9)
    e, a, alpha = fit_power_law_offset(x, 1.5 + 40.0 * x**-0.4)
    assert e == pytest.approx(1.5, abs=2e-3)
    assert alpha == pytest.approx(0.4, abs=0.01) and a == pytest.approx(40.0, rel=0.05)
    # a pure power law gets E ≈ 0
    e, _, alpha = fit_power_law_offset(x, 3.0 * x**-0.1)
    assert e < 0.01 and alpha == pytest.approx(0.1, abs=0.005)
    with pytest.raises(ValueError, match="at least 3 points"):
        fit_power_law_offset([1, 2], [2, 1])


def test_compute_frontier_keeps_the_lowest_loss_per_budget():
    runs = [
        {"eval_compute": [1.0, 2.0, 4.0], "val_curve": [3.0, 2.5, 2.4]},
        {"eval_compute": [2.0, 4.0, 8.0], "val_curve": [2.8, 2.2, 1.9]},
    ]
    assert compute_frontier(runs) == ([1.0, 2.0, 4.0, 8.0], [3.0, 2.5, 2.2, 1.9])
    with pytest.raises(ValueError, match="no curve points"):
        compute_frontier([])


# --- sizes ----------------------------------------------------------------------------------------
def test_scaling_sizes_span_10k_to_1m_parameters():
    assert len(SCALING_SIZES) == 6
    totals = [total_params(c) for c in SCALING_SIZES]
    assert totals == sorted(totals) and len(set(totals)) == 6
    assert 8_000 <= totals[0] <= 15_000 and 700_000 <= totals[-1] <= 1_100_000
    assert SCALING_SIZES[-1] == BABY_GPT  # the largest is lesson 09's baby GPT
    for c in SCALING_SIZES:
        assert (c.vocab_size, c.max_len, c.dropout, c.use_bias, c.tie_embeddings) == (
            65,
            64,
            0.0,
            False,
            True,
        )
        assert c.d_model % c.num_heads == 0
    assert set(LESSON_SWEEP.configs) <= set(SCALING_SIZES) and len(LESSON_SWEEP.configs) >= 3
    assert FULL_SWEEP.configs == SCALING_SIZES


def test_non_embedding_params_is_the_total_minus_the_tables():
    # the baby GPT by hand: 4 blocks of 12 d² + 2 d (no biases) and LN_f's d, for d = 128
    assert total_params(BABY_GPT) == 804_096
    assert non_embedding_params(BABY_GPT) == 4 * (12 * 128**2 + 2 * 128) + 128 == 787_584
    for c in (*SCALING_SIZES, TINY):
        tables = (c.vocab_size + c.max_len) * c.d_model
        expected = gpt_param_count(c.vocab_size, c.max_len, c.d_model, c.num_layers, use_bias=False)
        assert total_params(c) == expected
        assert non_embedding_params(c) == expected - tables
    untied = dataclasses.replace(TINY, tie_embeddings=False, use_bias=True)
    assert non_embedding_params(untied) == (
        gpt_param_count(65, 64, 16, 1, use_bias=True, tie_embeddings=False) - (65 + 64 + 65) * 16
    )


def test_non_embedding_params_matches_a_built_model():
    model = TINY.build(seed=0)
    tables = sum(int(np.prod(v.shape)) for v in model.embed.weights)
    assert model.count_params() == total_params(TINY)
    assert model.count_params() - tables == non_embedding_params(TINY)


def test_counts_refuse_bad_configs():
    with pytest.raises(TypeError, match="ModelConfig"):
        non_embedding_params({"d_model": 16})
    with pytest.raises(ValueError, match="num_heads must divide d_model"):
        total_params(ModelConfig(d_model=16, num_heads=3, num_layers=1))


# --- training one size ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def splits():
    return shakespeare_splits()


@pytest.fixture(scope="module")
def tiny_result(splits):
    train, val = splits
    # a larger learning rate than the sweep's 1e-3, so that 60 steps move the loss clearly
    return train_size(TINY, train, val, steps=60, batch_size=8, eval_every=20, eval_windows=50,
                      final_windows=100, learning_rate=5e-3)  # fmt: skip


def test_train_size_bookkeeping(tiny_result):
    r = tiny_result
    n = non_embedding_params(TINY)
    assert (r.params, r.non_embedding_params) == (total_params(TINY), n)
    assert r.tokens == 60 * 8 * 64 and r.compute == 6 * n * r.tokens
    assert r.eval_steps == [20, 40, 60]
    assert r.eval_tokens == [s * 8 * 64 for s in r.eval_steps]
    assert r.eval_compute == [6 * n * t for t in r.eval_tokens]
    assert r.tokens_per_param == pytest.approx(r.tokens / r.params)
    d = r.to_dict()
    assert d["tokens_per_param"] == r.tokens_per_param and d["config"]["d_model"] == 16
    json.dumps(d)  # JSON-ready


def test_train_size_learns(tiny_result):
    r = tiny_result
    assert r.initial_val_loss == pytest.approx(math.log(65), abs=0.05)  # near uniform at first
    assert r.val_loss < math.log(65) - 0.4  # 60 steps already learn the character frequencies
    assert r.val_curve[-1] < r.val_curve[0] < r.initial_val_loss


def test_train_size_refuses_bad_arguments(splits):
    train, val = splits
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        train_size(TINY, train, val, steps=0)
    with pytest.raises(ValueError, match="seed"):
        train_size(TINY, train, val, steps=1, seed=-1)
    with pytest.raises(ValueError, match="learning_rate"):
        train_size(TINY, train, val, steps=1, learning_rate=0)
    with pytest.raises(TypeError, match="ModelConfig"):
        train_size("d16", train, val, steps=1)


def test_sweep_runs_every_size_and_seed(splits):
    train, val = splits
    seen = []
    small = dataclasses.replace(TINY, d_model=8)
    results = sweep([TINY, small], 3, train=train, val=val, seeds=(0, 1), eval_windows=10,
                    final_windows=10, callback=seen.append)  # fmt: skip
    assert [(r.name, r.seed) for r in results] == [
        ("d16·L1·h2", 0),
        ("d16·L1·h2", 1),
        ("d8·L1·h2", 0),
        ("d8·L1·h2", 1),
    ]
    assert seen == results and all(isinstance(r, SizeResult) for r in results)
    means = mean_final_losses(results)
    assert means["d16·L1·h2"]["val_loss"] == pytest.approx(
        np.mean([r.val_loss for r in results[:2]])
    )
    with pytest.raises(TypeError, match="SweepConfig"):
        sweep(LESSON_SWEEP, steps=10)
    with pytest.raises(ValueError, match="configs is empty"):
        sweep([], 3, train=train, val=val)
    assert isinstance(LESSON_SWEEP, SweepConfig)


# --- the shipped results --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shipped():
    if not SCALING_LAW_JSON.exists():
        pytest.fail(f"{SCALING_LAW_JSON} is missing: run python benchmarks/scaling_law.py")
    return json.loads(SCALING_LAW_JSON.read_text())


def test_shipped_runs_are_consistent(shipped):
    assert shipped["command"].startswith("python benchmarks/scaling_law.py")
    assert {"cpu_count", "tensorflow"} <= set(shipped["machine"]) and shipped["date"]
    by_name = {f"d{c.d_model}·L{c.num_layers}·h{c.num_heads}": c for c in SCALING_SIZES}
    steps = shipped["protocol"]["steps"]
    for r in shipped["runs"]:
        cfg = by_name[r["name"]]
        assert r["config"] == dataclasses.asdict(cfg)
        assert (r["params"], r["non_embedding_params"]) == (
            total_params(cfg),
            non_embedding_params(cfg),
        )
        assert r["steps"] == steps and r["tokens"] == steps * r["batch_size"] * cfg.max_len
        assert r["compute"] == pytest.approx(6 * r["non_embedding_params"] * r["tokens"])
        assert r["eval_steps"][-1] == steps and len(r["val_curve"]) == len(r["eval_steps"])
        assert r["eval_compute"][-1] == pytest.approx(r["compute"])
        assert r["tokens_per_param"] == pytest.approx(r["tokens"] / r["params"])
        # the curve's last point (first 200 windows) and the final loss (all windows) agree roughly
        assert abs(r["val_curve"][-1] - r["val_loss"]) < 0.1
        assert r["val_loss"] < math.log(65)


def test_shipped_fits_recomputed_from_the_stored_losses(shipped):
    runs = shipped["runs"]
    sizes = mean_final_losses(runs)
    assert list(sizes) == list(shipped["sizes"])
    for name, s in sizes.items():
        assert s["val_loss"] == pytest.approx(shipped["sizes"][name]["val_loss"], rel=1e-12)
    n = [s["non_embedding_params"] for s in sizes.values()]
    loss = [s["val_loss"] for s in sizes.values()]
    a, alpha = fit_power_law(n, loss)
    assert shipped["fit_vs_non_embedding_params"]["alpha"] == pytest.approx(alpha, rel=1e-9)
    assert shipped["fit_vs_non_embedding_params"]["a"] == pytest.approx(a, rel=1e-9)
    cs, ls = compute_frontier(runs)
    assert shipped["compute_frontier"] == {"compute": cs, "val_loss": ls}
    a, alpha = fit_power_law(cs, ls)
    assert shipped["fit_vs_compute_frontier"]["alpha"] == pytest.approx(alpha, rel=1e-9)
    assert 0 < alpha < 1  # the frontier falls, but slower than 1/C
    # the full sweep: every size, and bigger is better from the smallest to the largest
    if len(sizes) == len(SCALING_SIZES):
        assert loss[-1] < loss[0]
        assert shipped["fit_vs_non_embedding_params"]["alpha"] > 0


@pytest.mark.slow
def test_benchmark_script_writes_consistent_json(tmp_path):
    """A 4-step run of benchmarks/scaling_law.py (two sizes) writes the keys the lesson reads."""
    import subprocess
    import sys

    out = tmp_path / "scaling.json"
    script = SCALING_LAW_JSON.parents[1] / "scaling_law.py"
    args = ["--steps", "4", "--sizes", "0", "1", "--eval-every", "2", "--eval-windows", "8"]
    r = subprocess.run(
        [sys.executable, str(script), *args, "--no-xla", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=SCALING_LAW_JSON.parents[2],
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "fit_vs_non_embedding_params: alpha = " in r.stdout
    d = json.loads(out.read_text())
    assert d["command"] == "python benchmarks/scaling_law.py " + " ".join(
        [*args, "--no-xla", "--json", str(out)]
    )
    assert [run["name"] for run in d["runs"]] == ["d24·L1·h2", "d32·L2·h2"]
    assert [run["eval_steps"] for run in d["runs"]] == [[2, 4], [2, 4]]
    assert {"fit_vs_non_embedding_params", "fit_vs_compute_frontier", "compute_frontier"} <= set(d)
    assert d["protocol"]["xla"] is False and d["protocol"]["seeds"] == [0]
