"""Tests for lessons_lib.decoding: the KV cache gives the logits of full recomputation at every
step, beam width 1 is greedy, a beam wide enough finds what a brute-force search over every
sequence finds, batching changes nothing, the bad inputs; and the benchmark's smoke mode."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lessons_lib
from lessons_lib import BPETokenizer
from lessons_lib._backend import keras, tf
from lessons_lib.decoding import (
    Hypothesis,
    Translator,
    beam_search,
    greedy_decode,
    length_penalty,
    translate,
)
from lessons_lib.seq2seq import SEQ2SEQ_SPECIAL_TOKENS, EncoderDecoder, encode_sources

ROOT = Path(__file__).resolve().parents[1]
PAD, BOS, EOS = 0, 2, 3
SOURCES = [[5, 6, 7, 8], [9, 10], [4, 5, 6, 7, 8, 9, 11], [12]]


def build(seed: int = 0, stddev: float = 0.5, **kwargs) -> EncoderDecoder:
    keras.utils.set_random_seed(seed)
    args = dict(
        source_vocab_size=14,
        target_vocab_size=15,
        max_len=10,
        d_model=16,
        num_heads=2,
        num_encoder_layers=1,
        num_decoder_layers=1,
        embeddings_initializer=keras.initializers.RandomNormal(stddev=stddev),
    )
    return EncoderDecoder(**{**args, **kwargs})


@pytest.fixture(scope="module")
def model() -> EncoderDecoder:
    return build(num_decoder_layers=2)  # two caches to keep in step


@pytest.fixture(scope="module")
def translator(model) -> Translator:
    return Translator(model)


@pytest.fixture(scope="module")
def eager(model) -> Translator:
    """The same model called eagerly: no tracing, for tests whose few calls have shapes of their
    own (the compiled path is the same code, checked against it in the first test)."""
    return Translator(model, run_eagerly=True)


def teacher_forced_log_probs(model, src, outputs) -> np.ndarray:
    """log P(y_t | y_<t, x) for each output row, from one full forward pass (no decoding code)."""
    inputs = np.concatenate([np.full((len(outputs), 1), BOS), outputs[:, :-1]], axis=1)
    logits = model(src, inputs.astype(np.int32)).numpy().astype(np.float64)
    log_p = logits - logits.max(-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
    return np.take_along_axis(log_p, outputs[..., None], axis=-1)[..., 0]


def test_length_penalty():
    assert length_penalty(1, 0.6) == 1.0
    assert length_penalty(7, 0.0) == 1.0
    assert length_penalty(7, 0.6) == pytest.approx(2**0.6)  # (5 + 7) / 6 = 2
    np.testing.assert_allclose(length_penalty(np.array([1, 13]), 1.0), [1.0, 3.0])


# --- the KV cache ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["compiled", "eager"])
def test_cached_logits_equal_full_recomputation_at_every_step(request, mode):
    translator = request.getfixturevalue({"compiled": "translator", "eager": "eager"}[mode])
    model = translator.model
    cached, logits_c = translator.greedy(SOURCES, max_length=8, return_logits=True)
    full, logits_f = translator.greedy(SOURCES, max_length=8, use_cache=False, return_logits=True)
    assert logits_c.shape == logits_f.shape and logits_c.shape[1] >= 2
    np.testing.assert_allclose(logits_c, logits_f, atol=1e-4)
    assert [h.tokens for h in cached] == [h.tokens for h in full]
    # and both equal the teacher-forced logits of the whole output, in one pass
    src = translator.check_source(SOURCES)
    steps = logits_c.shape[1]
    outputs = np.array(
        [list(h.tokens) + [EOS] * (steps - len(h.tokens)) for h in cached], dtype=np.int32
    )
    inputs = np.concatenate([np.full((len(src), 1), BOS), outputs[:, :-1]], axis=1)
    np.testing.assert_allclose(model(src, inputs.astype(np.int32)).numpy(), logits_c, atol=1e-4)
    for h, lp in zip(cached, teacher_forced_log_probs(model, src, outputs)):
        assert h.log_prob == pytest.approx(lp[: h.length].sum(), abs=1e-4)


def test_the_cache_is_filled_once_and_grows_by_one_position(translator):
    """prefill computes each block's cross-attention keys/values of the source once; every
    decode_step reuses them and writes one new self-attention position."""
    model = translator.model
    src = translator.check_source(SOURCES)
    h, mask = model.encode(src)
    bos = np.full((len(src), 1), BOS, np.int32)
    logits, cache, context_kv = model.decoder.prefill(bos, h, mask, cache_len=5)
    assert len(cache) == len(context_kv) == model.num_decoder_layers
    for (k, v), (k_c, v_c), block in zip(cache, context_kv, model.decoder.blocks):
        assert k.shape == v.shape == (len(src), 2, 5, 8)
        assert not np.any(k.numpy()[:, :, 1:])  # only position 0 is written
        expected = block.cross.split_heads(block.cross.wk(h)).numpy()
        np.testing.assert_allclose(k_c.numpy(), expected, atol=1e-6)
        assert k_c.shape == (len(src), 2, src.shape[1], 8)
    token = np.argmax(logits.numpy()[:, -1], -1).astype(np.int32)
    _, new_cache = model.decoder.decode_step(token, cache, 1, context_kv, mask)
    for (k0, _), (k1, _) in zip(cache, new_cache):
        np.testing.assert_array_equal(k1.numpy()[:, :, :1], k0.numpy()[:, :, :1])
        assert np.any(k1.numpy()[:, :, 1]) and not np.any(k1.numpy()[:, :, 2:])


def test_a_batch_decodes_as_its_sentences_alone(translator):
    batch = translator.greedy(SOURCES, max_length=8)
    beams = translator.beam_search(SOURCES, beam_width=4, max_length=8)
    for i, s in enumerate(SOURCES):
        alone = translator.greedy([s], max_length=8)[0]
        assert alone.tokens == batch[i].tokens
        assert alone.log_prob == pytest.approx(batch[i].log_prob, abs=1e-4)
        beam = translator.beam_search([s], beam_width=4, max_length=8)[0]
        assert beam.tokens == beams[i].tokens
        assert beam.score == pytest.approx(beams[i].score, abs=1e-4)


def test_beam_with_and_without_cache_agree(translator):
    a = translator.beam_search(SOURCES, beam_width=4, max_length=8, n_best=4)
    b = translator.beam_search(SOURCES, beam_width=4, max_length=8, n_best=4, use_cache=False)
    for x, y in zip(a, b):
        assert [h.tokens for h in x] == [h.tokens for h in y]
        np.testing.assert_allclose([h.score for h in x], [h.score for h in y], atol=1e-4)


# --- beam search ----------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["fixture", "another seed"])
def test_beam_width_1_is_greedy(request, which):
    if which == "fixture":
        t = request.getfixturevalue("translator")
    else:
        t = Translator(build(seed=1), run_eagerly=True)
    greedy = t.greedy(SOURCES, max_length=8)
    beam = t.beam_search(SOURCES, beam_width=1, max_length=8, length_penalty=0.0)
    for g, b in zip(greedy, beam):
        assert (g.tokens, g.finished, g.length) == (b.tokens, b.finished, b.length)
        assert g.log_prob == pytest.approx(b.log_prob, abs=1e-6)
    # with a length penalty, width 1 may go on after greedy's <eos>, and only ever finds better
    normalized = t.beam_search(SOURCES, beam_width=1, max_length=8, length_penalty=0.6)
    for g, b in zip(greedy, normalized):
        assert b.score >= g.log_prob / length_penalty(g.length, 0.6) - 1e-6


def all_hypotheses(vocab: int, max_length: int):
    """Every output a search can end with: ⟨eos⟩-terminated sequences of at most max_length
    tokens (no ⟨eos⟩ before the last), and the sequences of exactly max_length tokens without
    ⟨eos⟩ (stopped there, unfinished)."""
    others = [w for w in range(vocab) if w not in (EOS, PAD, BOS)]  # never written
    for n in range(1, max_length + 1):
        for body in itertools.product(others, repeat=n - 1):
            yield body + (EOS,), True
    yield from ((body, False) for body in itertools.product(others, repeat=max_length))


def brute_force(model, source, max_length):
    """log P(Y | X) of every hypothesis of `all_hypotheses`, by full forward passes:
    ``[(log_prob, |Y|, tokens, finished), ...]``."""
    src = np.array([source], dtype=np.int32)
    out = []
    hyps = list(all_hypotheses(model.target_vocab_size, max_length))
    for n in range(1, max_length + 1):
        group = [(y, f) for y, f in hyps if len(y) == n]
        outputs = np.array([y for y, _ in group], dtype=np.int32)
        lps = teacher_forced_log_probs(model, np.repeat(src, len(group), 0), outputs).sum(1)
        out += [(lp, n, y[:-1] if f else y, f) for (y, f), lp in zip(group, lps)]
    return out


def ranked(hypotheses, alpha):
    """``[(score, log_prob, tokens, finished), ...]``, best first, for length penalty α."""
    scored = [(lp / length_penalty(n, alpha), lp, y, f) for lp, n, y, f in hypotheses]
    return sorted(scored, key=lambda s: -s[0])


def test_a_wide_beam_finds_the_brute_force_best():
    """Target vocabulary of 6 (pad, unk, bos, eos and two words; pad and bos are never written),
    at most 5 tokens: 121 outputs end in <eos>, 243 stop unfinished. A beam of 486 (81 live
    hypotheses × 6 tokens at the last step) keeps every hypothesis at every step, so its n best
    are the true n best, for every length penalty; the exact stopping rule may stop it early only
    when nothing left can beat them."""
    model = build(seed=3, stddev=1.0, target_vocab_size=6)
    t = Translator(model, run_eagerly=True)
    sources = [[5, 6, 7], [8, 9]]
    every = [brute_force(model, s, 5) for s in sources]
    short = [brute_force(model, s, 2) for s in sources]
    assert [len(h) for h in every] == [364, 364]
    winners = set()
    for alpha in (0.0, 0.6, 2.0):
        found = t._search(t.check_source(sources), 486, 5, alpha, use_cache=True, n_best=5)
        for hypotheses, best in zip(every, found):
            truth = ranked(hypotheses, alpha)
            assert (
                truth[0][0] - truth[1][0] > 1e-3
            )  # a clear winner: the comparison means something
            assert [h.tokens for h in best] == [s[2] for s in truth[:5]]
            assert [h.finished for h in best] == [s[3] for s in truth[:5]]
            np.testing.assert_allclose(
                [h.score for h in best], [s[0] for s in truth[:5]], atol=1e-4
            )
            np.testing.assert_allclose(
                [h.log_prob for h in best], [s[1] for s in truth[:5]], atol=1e-4
            )
            winners.add(best[0].tokens)
        # the widest beam the public API allows is the vocabulary: enough for 2 tokens
        public = t.beam_search(sources, beam_width=6, max_length=2, length_penalty=alpha)
        for hypotheses, best in zip(short, public):
            assert best.tokens == ranked(hypotheses, alpha)[0][2]
    assert len(winners) > 2  # the length penalty changes which translation wins


def test_n_best_lists_are_consistent(translator):  # compiled: the shapes of the tests above
    lists = translator.beam_search(SOURCES, beam_width=4, max_length=8, n_best=3)
    best = translator.beam_search(SOURCES, beam_width=4, max_length=8)
    for hyps, top in zip(lists, best):
        assert 1 <= len(hyps) <= 3 and hyps[0] == top
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        for h in hyps:
            assert isinstance(h, Hypothesis) and EOS not in h.tokens
            assert h.length == len(h.tokens) + h.finished <= 8
            assert h.score == pytest.approx(h.log_prob / length_penalty(h.length, 0.6))
            assert h.finished or h.length == 8


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"beam_width": 0}, r"beam_width must be in \[1, 15\]"),
        ({"beam_width": -2}, r"beam_width must be in \[1, 15\]"),
        ({"beam_width": 16}, r"beam_width must be in \[1, 15\].*target vocabulary size 15"),
        ({"beam_width": 2.0}, "beam_width must be an integer"),
        ({"beam_width": True}, "beam_width must be an integer"),
        ({"max_length": 0}, r"max_length must be in \[1, 10\]"),
        ({"max_length": -1}, r"max_length must be in \[1, 10\]"),
        ({"max_length": 11}, r"max_length must be in \[1, 10\].*max_len=10"),
        ({"length_penalty": -0.5}, "length_penalty must be a finite number"),
        ({"length_penalty": float("nan")}, "length_penalty must be a finite number"),
        ({"n_best": 5}, r"n_best must be in \[1, 4\]"),
    ],
)
def test_beam_search_refuses(translator, kwargs, match):
    args = {"beam_width": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        translator.beam_search(SOURCES, **args)


@pytest.mark.parametrize(
    "source, error, match",
    [
        ([], ValueError, "empty batch"),
        ([[]], ValueError, "no tokens"),
        ([[5, 6], [0, 0]], ValueError, r"row\(s\) \[1\] hold only padding"),
        (np.zeros((2, 0), np.int32), ValueError, "no tokens"),
        ([[5, 14]], ValueError, r"out of the vocabulary \(valid ids are 0..13.*14 at \[0, 1\]"),
        ([[5, -3]], ValueError, "out of the vocabulary"),
        ([list(range(4, 14)) + [4]], ValueError, r"11 positions.*max_len=10"),
        ([[5.5, 6.0]], TypeError, "integer token ids"),
        (np.array([5, 6]), ValueError, r"\[batch, T\]"),
    ],
)
def test_bad_sources_are_refused(translator, source, error, match):
    for run in (translator.greedy, translator.beam_search):
        with pytest.raises(error, match=match):
            run(source)


def test_greedy_refuses_a_bad_max_length(translator):
    for bad in (0, -1, 11, 2.5):
        with pytest.raises(ValueError, match="max_length"):
            translator.greedy(SOURCES, max_length=bad)
    with pytest.raises(TypeError, match="EncoderDecoder"):
        Translator(keras.Sequential())


# --- text in, text out ----------------------------------------------------------------------------


def test_translate_texts_and_the_module_functions():
    en = BPETokenizer.train(
        "I see the cat. The dog runs.", 40, special_tokens=SEQ2SEQ_SPECIAL_TOKENS
    )
    es = BPETokenizer.train(
        "Veo el gato. El perro corre.", 40, special_tokens=SEQ2SEQ_SPECIAL_TOKENS
    )
    model = build(source_vocab_size=en.vocab_size, target_vocab_size=es.vocab_size, max_len=16)
    texts = ["I see the cat.", "The dog runs.", "I see"]
    out = translate(model, texts, en, es, max_length=4)  # the model's own compiled Translator
    assert len(out) == 3 and all(isinstance(s, str) for s in out)
    assert not any(tok in s for s in out for tok in SEQ2SEQ_SPECIAL_TOKENS)
    ids = encode_sources(en, texts, 16)
    hyps = greedy_decode(model, ids, max_length=4)
    assert out == [es.decode(list(h.tokens), skip_special_tokens=True) for h in hyps]
    direct = beam_search(model, ids, beam_width=3, max_length=4)
    beams = Translator(model, run_eagerly=True).translate(
        texts, en, es, beam_width=3, max_length=4, batch_size=2
    )
    assert beams == [es.decode(list(h.tokens), skip_special_tokens=True) for h in direct]
    with pytest.raises(ValueError, match="is empty"):
        translate(model, [""], en, es)


def test_exports():
    for name in ("Hypothesis", "Translator", "beam_search", "greedy_decode", "length_penalty"):
        assert getattr(lessons_lib, name) is getattr(lessons_lib.decoding, name)
    assert lessons_lib.translate is translate
    assert tf.executing_eagerly()


# --- the benchmark ----------------------------------------------------------------------------


@pytest.mark.slow
def test_bench_translation_smoke_mode_prints_every_ratio():
    """The benchmark's smoke run prints every figure (speed itself is never asserted: see
    tests/test_benchmarks.py)."""
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks/bench_translation.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    out = r.stdout
    assert re.search(r"parameters: [\d,]+", out), out
    for search in ("greedy", "beam 4"):
        assert re.search(
            rf"{search}, max_length \d+: no cache [\d.]+ sent/s \| KV cache [\d.]+ sent/s \| "
            r"speed-up [\d.]+x \(mean length [\d.]+\)",
            out,
        ), out
    assert re.search(r"cached logits = recomputed: max \|difference\| [\d.e+-]+", out), out
