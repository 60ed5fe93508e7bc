"""Tests for lessons_lib.generation: the sampling filters on hand-computed cases, the Generator (KV
cache parity, contexts longer than max_len), bad inputs, and load_checkpoint's configuration check.
"""

import math

import keras
import numpy as np
import pytest

from lessons_lib import GPT
from lessons_lib.generation import (
    Generator,
    generate_text,
    next_token_distribution,
    sample_next,
    top_k_filter,
    top_p_filter,
)
from lessons_lib.tokenizers import CharTokenizer
from lessons_lib.training import load_checkpoint, save_checkpoint

NEG = -np.inf
Z = np.array([2.0, 1.0, 0.0, -1.0])
# softmax(Z) by hand: e^2, e^1, e^0, e^-1 over their sum 11.4752 -> 0.6439, 0.2369, 0.0871, 0.0321
P = np.exp(Z) / np.exp(Z).sum()

VOCAB, MAX_LEN = 11, 8


def tiny_gpt(d_model: int = 16, num_layers: int = 2, seed: int = 0) -> GPT:
    """A random GPT small enough to compile in a second.

    N(0, 1) embeddings give well-separated logits.
    """
    keras.utils.set_random_seed(seed)
    model = GPT(
        VOCAB,
        MAX_LEN,
        d_model,
        num_heads=2,
        num_layers=num_layers,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0, seed=seed),
    )
    model(np.zeros((1, MAX_LEN), dtype=np.int32))
    return model


@pytest.fixture(scope="module")
def model():
    return tiny_gpt()


@pytest.fixture(scope="module")
def gen(model):
    return Generator(model)


def last_logits(model, ids) -> np.ndarray:
    """The logits after ``ids`` ([T] with T <= max_len), from one plain forward pass."""
    return model(np.asarray(ids, dtype=np.int32)[None]).numpy()[0, -1]


# --- the filters, by hand -------------------------------------------------------------------------
def test_hand_softmax_values():
    np.testing.assert_allclose(P, [0.6439, 0.2369, 0.0871, 0.0321], atol=1e-4)


@pytest.mark.parametrize("k, kept", [(1, [0]), (2, [0, 1]), (3, [0, 1, 2]), (4, [0, 1, 2, 3])])
def test_top_k_filter_keeps_the_k_largest(k, kept):
    out = top_k_filter(Z, k)
    expected = np.full(4, NEG)
    expected[kept] = Z[kept]
    np.testing.assert_array_equal(out, expected)


def test_top_k_filter_unsorted_rows_and_ties():
    out = top_k_filter(np.array([[0.0, 3.0, -1.0, 1.0], [5.0, 5.0, 1.0, 0.0]]), 2)
    np.testing.assert_array_equal(out, [[NEG, 3.0, NEG, 1.0], [5.0, 5.0, NEG, NEG]])
    # ties with the k-th largest are kept (documented): k=1 on [1, 1, 0] keeps both ones
    np.testing.assert_array_equal(top_k_filter(np.array([1.0, 1.0, 0.0]), 1), [1.0, 1.0, NEG])


@pytest.mark.parametrize(
    "p, kept",
    [
        (0.5, [0]),  # 0.644 >= 0.5 already
        (0.6439, [0]),  # just below p_0 = 0.64391
        (0.7, [0, 1]),  # 0.644 < 0.7 <= 0.644 + 0.237 = 0.881
        (0.88, [0, 1]),  # p_0 + p_1 = 0.8808
        (0.9, [0, 1, 2]),  # 0.881 < 0.9 <= 0.968
        (0.97, [0, 1, 2, 3]),
        (1.0, [0, 1, 2, 3]),
    ],
)
def test_top_p_filter_keeps_the_smallest_nucleus(p, kept):
    out = top_p_filter(Z, p)
    np.testing.assert_array_equal(np.isfinite(out), np.isin(np.arange(4), kept))
    np.testing.assert_array_equal(out[kept], Z[kept])  # kept logits are untouched
    assert P[kept].sum() >= p - 1e-12 and P[kept[:-1]].sum() < p  # smallest set that reaches p


def test_top_p_filter_does_not_depend_on_the_order_of_the_tokens():
    perm = np.array([2, 0, 3, 1])
    out = top_p_filter(Z[perm], 0.7)
    np.testing.assert_array_equal(np.isfinite(out), np.isin(perm, [0, 1]))
    rows = top_p_filter(np.stack([Z, Z[perm]]), 0.7)  # per row
    np.testing.assert_array_equal(
        np.isfinite(rows), [[True, True, False, False], np.isin(perm, [0, 1])]
    )


def test_next_token_distribution_hand_cases():
    np.testing.assert_allclose(next_token_distribution(Z), P, atol=1e-12)
    two = np.exp([2.0, 1.0]) / np.exp([2.0, 1.0]).sum()  # [0.731, 0.269]
    np.testing.assert_allclose(
        next_token_distribution(Z, top_k=2), [two[0], two[1], 0, 0], atol=1e-12
    )
    np.testing.assert_allclose(
        next_token_distribution(Z, top_p=0.7), [two[0], two[1], 0, 0], atol=1e-12
    )
    half = (
        np.exp(Z / 2) / np.exp(Z / 2).sum()
    )  # temperature 2: softmax([1, .5, 0, -.5]) = [.455, .276, .167, .102]
    np.testing.assert_allclose(next_token_distribution(Z, temperature=2.0), half, atol=1e-12)
    np.testing.assert_allclose(half, [0.455, 0.276, 0.167, 0.102], atol=1e-3)


def test_temperature_is_applied_before_top_p():
    # tau = 1: mass before token 2 is 0.881 >= 0.75 -> 2 tokens; tau = 2: 0.731 < 0.75 -> 3 tokens
    assert (next_token_distribution(Z, top_p=0.75) > 0).sum() == 2
    assert (next_token_distribution(Z, temperature=2.0, top_p=0.75) > 0).sum() == 3
    # top-k's set does not depend on the temperature (dividing by tau > 0 keeps the order)
    for tau in (0.3, 1.0, 3.0):
        assert np.flatnonzero(next_token_distribution(Z, temperature=tau, top_k=2)).tolist() == [
            0,
            1,
        ]


def test_greedy_is_argmax():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 7))
    np.testing.assert_array_equal(sample_next(logits, rng, greedy=True), logits.argmax(axis=-1))


def test_low_temperature_approaches_greedy():
    logits = np.random.default_rng(1).normal(size=(6, 9))
    dist = next_token_distribution(logits, temperature=1e-3)
    np.testing.assert_allclose(dist, np.eye(9)[logits.argmax(-1)], atol=1e-12)
    entropies = [
        -(d * np.log(np.where(d > 0, d, 1))).sum()
        for d in (next_token_distribution(Z, temperature=t) for t in (4.0, 1.0, 0.5, 0.1))
    ]
    assert all(
        a > b for a, b in zip(entropies, entropies[1:])
    )  # lower temperature, sharper distribution
    for seed in range(5):
        got = sample_next(logits, np.random.default_rng(seed), temperature=1e-3)
        np.testing.assert_array_equal(got, logits.argmax(-1))


def test_sampling_frequencies_follow_the_distribution():
    rows = np.tile(Z, (20000, 1))
    draws = sample_next(rows, np.random.default_rng(0), top_k=3)
    freq = np.bincount(draws, minlength=4) / len(draws)
    expected = next_token_distribution(Z, top_k=3)
    assert freq[3] == 0  # a filtered token is never drawn
    np.testing.assert_allclose(freq, expected, atol=0.015)


def test_same_seed_same_sample(gen):
    a = gen.generate([1, 2, 3], 20, seed=7)
    b = gen.generate([1, 2, 3], 20, seed=7)
    c = gen.generate([1, 2, 3], 20, seed=8)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (1, 20) and a.dtype.kind == "i" and 0 <= a.min() and a.max() < VOCAB
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(
        sample_next(np.tile(Z, (50, 1)), np.random.default_rng(3)),
        sample_next(np.tile(Z, (50, 1)), np.random.default_rng(3)),
    )


# --- the Generator: KV cache and long contexts
# ------------------------------------------------------------------
def test_greedy_generator_first_token_is_argmax_of_the_model(model, gen):
    prompt = [4, 1, 9]
    first = gen.generate(prompt, 1, greedy=True)[0, 0]
    assert first == last_logits(model, prompt).argmax()


@pytest.mark.parametrize("prompt_len", [1, 3, MAX_LEN])
def test_kv_cache_matches_full_recomputation_within_max_len(gen, prompt_len):
    prompt = np.arange(prompt_len) * 5 % VOCAB
    n = MAX_LEN - prompt_len + 1  # the last step sees exactly max_len tokens
    a, la = gen.generate(prompt, n, greedy=True, use_cache=True, return_logits=True)
    b, lb = gen.generate(prompt, n, greedy=True, use_cache=False, return_logits=True)
    assert la.shape == lb.shape == (1, n, VOCAB)
    assert np.abs(la - lb).max() <= 1e-4
    np.testing.assert_array_equal(a, b)


def test_kv_cache_matches_for_a_batch_and_when_sampling(gen):
    prompt = np.array([[1, 2, 3], [7, 7, 0]])
    a, la = gen.generate(prompt, 6, seed=3, top_k=5, use_cache=True, return_logits=True)
    b, lb = gen.generate(prompt, 6, seed=3, top_k=5, use_cache=False, return_logits=True)
    assert a.shape == (2, 6)
    assert np.abs(la - lb).max() <= 1e-4
    np.testing.assert_array_equal(a, b)


def test_no_cache_path_uses_the_last_max_len_tokens(model, gen):
    prompt = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8])  # 12 > max_len = 8
    new, logits = gen.generate(prompt, 6, greedy=True, use_cache=False, return_logits=True)
    seq = np.concatenate([prompt, new[0]])
    for i in range(6):
        window = seq[: len(prompt) + i][-MAX_LEN:]
        np.testing.assert_allclose(logits[0, i], last_logits(model, window), atol=1e-4)
    # keeping the *first* max_len tokens instead would give other logits
    assert np.abs(logits[0, 0] - last_logits(model, prompt[:MAX_LEN])).max() > 1e-2


@pytest.mark.parametrize(
    "prompt_len, contexts",
    [
        # the documented re-fill rule: a full cache (8 tokens) is re-filled from the last 8 // 2 = 4
        # tokens
        (12, [8, 4, 5, 6, 7, 8, 4, 5, 6, 7]),
        (5, [5, 6, 7, 8, 4, 5, 6, 7, 8, 4]),
    ],
)
def test_cached_path_beyond_max_len_follows_the_refill_rule(model, gen, prompt_len, contexts):
    prompt = np.arange(prompt_len) * 3 % VOCAB
    new, logits = gen.generate(
        prompt, len(contexts), greedy=True, use_cache=True, return_logits=True
    )
    seq = np.concatenate([prompt, new[0]])
    for i, c in enumerate(contexts):
        np.testing.assert_allclose(
            logits[0, i], last_logits(model, seq[: prompt_len + i][-c:]), atol=1e-4
        )


def test_long_generation_runs_with_and_without_cache(gen):
    for use_cache in (True, False):
        out = gen.generate([1, 2], 3 * MAX_LEN, seed=0, top_p=0.9, use_cache=use_cache)
        assert out.shape == (1, 3 * MAX_LEN) and 0 <= out.min() and out.max() < VOCAB


# --- bad inputs -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "prompt, exc, match",
    [
        ([], ValueError, "non-empty"),
        (np.zeros((1, 0), dtype=np.int32), ValueError, "non-empty"),
        ([1.0, 2.0], TypeError, "integer token ids"),
        (["a", "b"], TypeError, "integer token ids"),
        ([0, VOCAB], ValueError, r"\[0, 11\)"),
        ([-1, 2], ValueError, r"\[0, 11\)"),
    ],
)
def test_bad_prompts(gen, prompt, exc, match):
    with pytest.raises(exc, match=match):
        gen.generate(prompt, 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"top_k": 0}, "top_k"),
        ({"top_k": -2}, "top_k"),
        ({"top_k": VOCAB + 1}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": -0.1}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
    ],
)
def test_bad_sampling_settings(gen, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gen.generate([1, 2], 3, **kwargs)
    with pytest.raises(ValueError, match=match):
        next_token_distribution(np.zeros(VOCAB), **kwargs)


def test_boundary_sampling_settings_are_accepted(gen):
    assert gen.generate([1], 2, top_k=VOCAB).shape == (1, 2)
    assert gen.generate([1], 2, top_k=1).shape == (1, 2)
    assert gen.generate([1], 2, top_p=1.0).shape == (1, 2)
    np.testing.assert_allclose(next_token_distribution(Z, top_k=4), P)


@pytest.mark.parametrize("n", [0, -3, 2.5, True, "4"])
def test_bad_max_new_tokens(gen, n):
    with pytest.raises(ValueError, match="max_new_tokens"):
        gen.generate([1, 2], n)


def test_generate_text_errors(model, gen):
    tok = CharTokenizer.from_text("abcdefghij ")  # 11 characters = VOCAB
    assert tok.vocab_size == VOCAB
    text = generate_text(model, tok, "abc", 5, generator=gen, seed=0)
    assert len(text) == 5 and set(text) <= set(tok.tokens)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        generate_text(model, tok, "abc XYZ", 5, generator=gen)
    with pytest.raises(ValueError, match="must not be empty"):
        generate_text(model, tok, "", 5, generator=gen)
    with pytest.raises(TypeError, match="must be a str"):
        generate_text(model, tok, [1, 2], 5, generator=gen)


# --- checkpoints ----------------------------------------------------------------------------------
def test_load_checkpoint_round_trip_and_configuration_check(model, tmp_path):
    path = save_checkpoint(model, tmp_path / "tiny.weights.h5", {"note": "test"})
    same = tiny_gpt()
    for w in same.weights:  # scramble, so that loading must restore every weight
        w.assign(np.random.default_rng(1).normal(size=w.shape).astype(w.dtype))
    meta = load_checkpoint(same, path)
    assert meta["note"] == "test" and meta["config"]["d_model"] == 16
    for a, b in zip(same.weights, model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(
        ValueError, match=r"another configuration \(num_layers: checkpoint 2 vs model 1\)"
    ):
        load_checkpoint(tiny_gpt(num_layers=1), path)
    with pytest.raises(
        ValueError, match=r"d_ff: checkpoint 64 vs model 32, d_model: checkpoint 16 vs model 8"
    ):
        load_checkpoint(tiny_gpt(d_model=8), path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint(same, tmp_path / "missing.weights.h5")


def test_kv_cache_size_formula(model):
    _, cache = model.prefill(np.zeros((2, MAX_LEN), dtype=np.int32))
    floats = sum(math.prod(k.shape) + math.prod(v.shape) for k, v in cache)
    L, B, h, T, d_k = (
        model.num_layers,
        2,
        model.num_heads,
        MAX_LEN,
        model.d_model // model.num_heads,
    )
    assert floats == 2 * L * B * h * T * d_k
