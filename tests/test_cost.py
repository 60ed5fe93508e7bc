"""lessons_lib.cost (counting) and lessons_lib.measure (measuring), lesson 14 §1–§6."""

import math

import numpy as np
import pytest

from lessons_lib.cost import (
    BABY_GPT_ARCH,
    GPT2_SMALL,
    GPT3_175B,
    Architecture,
    dtype_bytes,
    graph_flops,
    training_compute,
)
from lessons_lib.measure import (
    attention_peak_memory,
    loglog_slope,
    matched_gru_units,
    median_seconds,
    recurrent_vs_attention,
    scores_bytes,
    step_seconds,
)
from lessons_lib.training import BABY_GPT, ModelConfig


def test_parameter_counts_match_keras_and_the_published_sizes():
    cfg = ModelConfig(d_model=32, num_layers=2, num_heads=2, max_len=16, use_bias=True)
    assert Architecture.of(cfg).params == cfg.build().count_params()
    assert BABY_GPT_ARCH == Architecture.of(BABY_GPT, name="baby GPT")
    assert BABY_GPT_ARCH.params == 804_096
    assert GPT2_SMALL.params == 124_439_808  # the released checkpoint (lesson 08 §4)
    assert 174e9 < GPT3_175B.params < 176e9  # "175B" (Brown et al., 2020)
    assert BABY_GPT_ARCH.embedding_params == (65 + 64) * 128
    assert GPT2_SMALL.non_embedding_params == GPT2_SMALL.params - (50257 + 1024) * 768
    assert GPT2_SMALL.bytes("bfloat16") == 2 * GPT2_SMALL.params
    assert GPT3_175B.bytes("int8") == GPT3_175B.params


def test_architecture_of_a_model_counts_what_it_has():
    """Sinusoidal positions and a non-default FFN width change the count: read from the model,
    never assumed (a learned table would be T·d parameters too many)."""
    from lessons_lib.gpt import GPT

    model = GPT(50, 16, 32, 2, 2, d_ff=48, positional="sinusoidal", tie_embeddings=False)
    model(np.zeros((1, 16), np.int32))
    arch = Architecture.of(model)
    assert arch.params == model.count_params()
    assert arch.embedding_params == 50 * 32 + 32 * 50  # token table and untied output, no positions
    with pytest.raises(ValueError, match="positional must be"):
        Architecture("x", 10, 8, 32, 1, 4, positional="rotary")


def test_forward_flops_equal_the_profilers_count_of_the_matrix_products():
    """The formula against TensorFlow's profiler reading the traced graph, op by op."""
    for cfg, (b, t) in (
        (ModelConfig(d_model=32, num_layers=2, num_heads=2, max_len=32), (2, 32)),
        (ModelConfig(d_model=48, num_layers=1, num_heads=4, max_len=32, vocab_size=100), (3, 16)),
    ):
        model = cfg.build()
        assert graph_flops(model, b, t) == Architecture.of(cfg).forward_flops(b, t)
        # the element-wise work (softmax, LayerNorm, GELU) adds a few per cent
        everything = graph_flops(model, b, t, matmuls_only=False)
        assert 1.0 < everything / graph_flops(model, b, t) < 1.2


def test_flop_terms_and_the_6nd_rule():
    terms = GPT2_SMALL.forward_flops_per_token()
    d, L, V, T = 768, 12, 50257, 1024
    assert terms["matmuls"] == 2 * (L * 12 * d * d + d * V)
    assert terms["attention"] == 4 * L * T * d
    assert terms["total"] == terms["matmuls"] + terms["attention"]
    assert GPT2_SMALL.forward_flops_per_token(context=1)["attention"] == 4 * L * d
    assert GPT2_SMALL.training_flops(2, 8) == 3 * GPT2_SMALL.forward_flops(2, 8)
    # GPT-3: 6 N D with 300 B tokens is the paper's 3.14e23 FLOPs (Brown et al., 2020, Table D.1)
    assert math.isclose(training_compute(GPT3_175B.params, 300 * 10**9), 3.14e23, rel_tol=0.01)


def test_kv_cache_bytes():
    assert BABY_GPT_ARCH.kv_cache_bytes_per_token() == 2 * 4 * 128 * 4
    assert GPT3_175B.kv_cache_bytes_per_token("float16") == 2 * 96 * 12288 * 2
    mqa = Architecture("mqa", 100, 16, 64, 2, 8, kv_heads=1)
    assert (
        mqa.kv_cache_bytes_per_token() * 8
        == Architecture("mha", 100, 16, 64, 2, 8).kv_cache_bytes_per_token()
    )


def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="dtype must be one of"):
        dtype_bytes("float8")
    with pytest.raises(ValueError, match="divisible by num_heads"):
        Architecture("x", 10, 8, 30, 1, 4)
    with pytest.raises(ValueError, match="multiple of kv_heads"):
        Architecture("x", 10, 8, 32, 1, 4, kv_heads=3)
    with pytest.raises(TypeError, match="expected a GPT or a ModelConfig"):
        Architecture.of({"d_model": 3})
    with pytest.raises(ValueError, match="context"):
        BABY_GPT_ARCH.forward_flops_per_token(context=0)
    with pytest.raises(ValueError, match="same length"):
        loglog_slope([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="positive"):
        loglog_slope([1, 2], [0, 1])
    with pytest.raises(ValueError, match="longer than the model's max_len"):
        step_seconds(ModelConfig(d_model=16, num_layers=1, max_len=8).build(), 1, 9)


def test_loglog_slope_recovers_a_power():
    x = np.array([2.0, 4.0, 8.0, 16.0])
    assert loglog_slope(x, 3 * x**2) == pytest.approx(2.0)
    assert loglog_slope(x, 5 / np.sqrt(x)) == pytest.approx(-0.5)


def test_median_seconds_is_a_median():
    calls = []
    assert median_seconds(lambda: calls.append(1) or np.zeros(1), repeats=3, warmup=2) >= 0
    assert len(calls) == 5


def test_scores_tensor_size_and_measured_peak_memory():
    assert scores_bytes(1, 4, 1024) == 16 * 2**20
    peak = attention_peak_memory([256, 2048])
    # the scores tensor dominates at T = 2,048 (64 MiB); the rest is a few MiB
    assert 0.9 * scores_bytes(1, 4, 2048) < peak[2048] < 1.5 * scores_bytes(1, 4, 2048)
    assert peak[256] < peak[2048] / 10


def test_gru_is_matched_to_a_block_and_both_run():
    assert matched_gru_units(128) == 200  # 3·(128·200 + 200² + 400) = 198,000 ≈ 198,272
    r = recurrent_vs_attention([4, 8], d_model=16, num_heads=2, batch=2, repeats=1)
    assert r["lengths"] == [4, 8] and len(r["gru"]) == len(r["transformer"]) == 2
    assert abs(r["gru_params"] - r["transformer_params"]) / r["transformer_params"] < 0.05
