"""Extractive QA (lessons_lib/qa.py, lesson 12): encoding, span model, decoding, metrics, evidence.

Independent checks: the span decoder against a brute-force search over all (start, end) pairs; the
metrics against hand-computed cases; the evidence share against a loop; the shipped checkpoint
against the exact match the lesson states.
"""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest

from lessons_lib import BPETokenizer
from lessons_lib.qa import (
    BABI_QA_CHECKPOINT,
    NEG_LOGIT,
    QA_SPECIAL_TOKENS,
    SpanQA,
    compile_span_model,
    decode_spans,
    encode_qa,
    evidence_share,
    exact_match,
    load_qa_checkpoint,
    normalize_answer,
    predict_spans,
    qa_scores,
    span_texts,
    token_f1,
    train_qa_tokenizer,
)


@dataclasses.dataclass(frozen=True)
class Rec:
    story: tuple
    question: str
    answer: object
    supporting: tuple = ()


RECORDS = [
    Rec(
        ("Mary moved to the bathroom.", "John went to the hallway."),
        "Where is Mary?",
        "bathroom",
        (0,),
    ),
    Rec(
        (
            "Mary moved to the bathroom.",
            "John went to the hallway.",
            "Daniel went back to the hallway.",
            "Sandra moved to  the garden.",
        ),
        "Where is Sandra?",
        "garden",
        (3,),
    ),
    Rec(
        ("Daniel journeyed to the office.", "Mary travelled to the kitchen."),
        "Where is Daniel?",
        "office",
        (0,),
    ),
]


@pytest.fixture(scope="module")
def tok():
    return train_qa_tokenizer(RECORDS, vocab_size=60)


# --------------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------------
def test_tokenizer_has_the_special_tokens_first(tok):
    assert tok.special_tokens[:3] == QA_SPECIAL_TOKENS
    assert [tok.token_to_id(t) for t in QA_SPECIAL_TOKENS] == [0, 1, 2]


def test_encoding_round_trips(tok):
    enc = encode_qa(RECORDS, tok, max_len=128)
    n, t = enc.ids.shape
    assert n == 3 and len(enc) == 3 and enc.ids.dtype == np.int32
    for b, r in enumerate(RECORDS):
        real = enc.ids[b][enc.padding_mask[b]]
        story = " ".join(" ".join(s.split()) for s in r.story)
        assert tok.decode(real) == f"[CLS] {r.question}[SEP] {story}[SEP]"
        assert not enc.padding_mask[b][len(real) :].any()  # padding only at the end
        assert (enc.ids[b][~enc.padding_mask[b]] == 0).all()
        # the question mask is the question; the answer mask is the story, nothing else
        assert tok.decode(enc.ids[b][enc.question_mask[b]]) == " " + r.question
        assert tok.decode(enc.ids[b][enc.answer_mask[b]]) == " " + story
        assert not (enc.answer_mask[b] & enc.question_mask[b]).any()
        specials = np.isin(enc.ids[b], [0, 1, 2])
        assert not (enc.answer_mask[b] & specials).any()
        # sentence ids cut the story into its sentences
        for k, s in enumerate(r.story):
            assert tok.decode(enc.ids[b][enc.sentence_ids[b] == k]) == " " + " ".join(s.split())
        # the answer span, inside the supporting sentence
        s, e = enc.start[b], enc.end[b]
        assert tok.decode(enc.ids[b, s : e + 1]).strip() == r.answer
        assert set(enc.sentence_ids[b, s : e + 1]) == set(r.supporting)
        assert enc.evidence_mask[b].sum() == (enc.sentence_ids[b] == r.supporting[0]).sum()
    assert span_texts(enc, enc.start, enc.end, tok) == [r.answer for r in RECORDS]
    targets = enc.targets()
    assert set(targets) == {"start", "end"} and set(enc.inputs()) == {
        "ids",
        "padding_mask",
        "answer_mask",
    }
    sub = enc.subset([2, 0])
    assert np.array_equal(sub.ids, enc.ids[[2, 0]]) and sub.supporting == (
        enc.supporting[2],
        enc.supporting[0],
    )


def test_dict_records_and_no_answer(tok):
    enc = encode_qa(
        [{"story": RECORDS[0].story, "question": "Where is John?", "answer": None}], tok, 128
    )
    assert enc.start[0] == enc.end[0] == -1
    with pytest.raises(ValueError, match="no answer"):
        enc.targets()


def test_pad_to_and_truncation(tok):
    enc = encode_qa(RECORDS, tok, max_len=128, pad_to=120)
    assert enc.ids.shape == (3, 120)
    # a window too small for the whole story keeps the latest sentences
    r = RECORDS[1]
    full = encode_qa([r], tok, max_len=128)
    n_last = int((full.sentence_ids[0] == 3).sum()) + int((full.sentence_ids[0] == 2).sum())
    small = full.ids.shape[1] - n_last + 1
    cut = encode_qa([r], tok, max_len=small)
    assert cut.dropped[0] == 2 and cut.ids.shape[1] <= small
    assert span_texts(cut, cut.start, cut.end, tok) == ["garden"]
    assert set(np.unique(cut.sentence_ids[0])) == {-1, 2, 3}
    # ... and refuses to drop the answer
    early = Rec(r.story, r.question, "bathroom", (0,))
    with pytest.raises(ValueError, match="raise max_len"):
        encode_qa([early], tok, max_len=small)


@pytest.mark.parametrize(
    "records, match, error",
    [
        ([], "empty batch", ValueError),
        ("Where is Mary?", "list of QA records", TypeError),
        ([Rec(RECORDS[0].story, 42, "bathroom", (0,))], r"question must be a str", TypeError),
        (
            [Rec(("Mary moved to the bathroom.", None), "Where is Mary?", "bathroom", (0,))],
            "story",
            TypeError,
        ),
        ([Rec(RECORDS[0].story, "Where is Mary?", 3, (0,))], "answer must be a str", TypeError),
        (
            [Rec("Mary moved to the bathroom.", "Where is Mary?", "bathroom", (0,))],
            "sequence of sentences",
            TypeError,
        ),
        ([Rec(RECORDS[0].story, "Where is Mary?", "kitchen", (0,))], "no answer span", ValueError),
        (
            [Rec(RECORDS[0].story, "Where is Mary?", "hallway", (0,))],
            r"occurs in sentence\(s\) \[1\]",
            ValueError,
        ),
        ([Rec(RECORDS[0].story, "Where is Mary?", "bathroom", (5,))], "points outside", ValueError),
        ([object()], "must have story, question and answer", TypeError),
    ],
)
def test_bad_records_are_refused(tok, records, match, error):
    with pytest.raises(error, match=match):
        encode_qa(records, tok, max_len=128)


def test_question_longer_than_the_window(tok):
    q_len = len(tok.encode(" " + RECORDS[0].question))
    with pytest.raises(ValueError, match="leaves 0 of max_len"):
        encode_qa(RECORDS[:1], tok, max_len=q_len + 3)
    with pytest.raises(ValueError, match="pad_to"):
        encode_qa(RECORDS, tok, max_len=128, pad_to=5)


def test_tokenizer_without_specials_is_refused():
    plain = BPETokenizer.train("Mary moved to the bathroom.", 30)
    with pytest.raises(ValueError, match="special tokens"):
        encode_qa(RECORDS, plain, 128)
    with pytest.raises(TypeError, match="BPETokenizer"):
        encode_qa(RECORDS, "tokenizer", 128)
    with pytest.raises(ValueError, match="empty batch"):
        train_qa_tokenizer([], 60)


# --------------------------------------------------------------------------------------------------
# Span decoding
# --------------------------------------------------------------------------------------------------
def brute_force(s, e, max_answer_len, allowed):
    """Every (i, j) with i <= j < i + L and tokens i..j allowed; first maximum in (i, j) order."""
    best, arg = -np.inf, None
    for i, j in itertools.product(range(len(s)), repeat=2):
        if i <= j < i + max_answer_len and allowed[i : j + 1].all() and s[i] + e[j] > best:
            best, arg = s[i] + e[j], (i, j)
    return arg, best


def test_decoder_matches_brute_force():
    rng = np.random.default_rng(0)
    for case in range(300):
        b, t = rng.integers(1, 5), rng.integers(1, 14)
        max_answer_len = int(rng.integers(1, 6))
        s, e = rng.normal(size=(b, t)), rng.normal(size=(b, t))
        allowed = rng.random((b, t)) < 0.7
        if case % 2:  # the QA layout: one contiguous story region
            lo = rng.integers(0, t, size=b)
            hi = np.array([rng.integers(low, t) for low in lo])
            allowed = (np.arange(t) >= lo[:, None]) & (np.arange(t) <= hi[:, None])
        allowed[np.arange(b), rng.integers(0, t, size=b)] = True  # every row has a position
        start, end, score = decode_spans(s, e, max_answer_len, allowed)
        for r in range(b):
            (i, j), best = brute_force(s[r], e[r], max_answer_len, allowed[r])
            assert (start[r], end[r]) == (i, j), (case, r)
            assert np.isclose(score[r], best)


def test_decoder_single_row_and_ties():
    s = np.array([0.0, 2.0, 1.0, 0.0])
    e = np.array([0.0, 0.0, 3.0, 3.0])
    assert decode_spans(s, e, 2)[:2] == (1, 2)  # 2 + 3, and (1, 3) is too long
    assert decode_spans(s, e, 3)[:2] == (1, 2)  # tie with (1, 3): the shorter span


def test_end_never_precedes_start():
    # argmax(s) = 2 but argmax(e) = 1: taking the two argmaxes would give the "span" (2, 1)
    s, e = np.array([0.0, 1.0, 5.0]), np.array([0.0, 4.0, 0.0])
    assert decode_spans(s, e, 3)[:2] == (1, 1)  # (1, 1) and (2, 2) both score 5: smaller start
    s = np.array([0.0, 1.5, 5.0])
    assert decode_spans(s, e, 3)[:2] == (1, 1)  # 1.5 + 4 = 5.5 > 5
    assert decode_spans(s, e, 3, allowed=np.array([False, False, True]))[:2] == (2, 2)


def test_excluded_positions_are_never_chosen():
    rng = np.random.default_rng(1)
    for _ in range(50):
        t = 12
        allowed = np.zeros((3, t), bool)
        allowed[:, 4:9] = True
        s, e = rng.normal(size=(3, t)), rng.normal(size=(3, t))
        s[~allowed] += 1e6  # huge logits outside: still excluded
        e[~allowed] += 1e6
        start, end, _ = decode_spans(s, e, 4, allowed)
        assert allowed[np.arange(3), start].all() and allowed[np.arange(3), end].all()
        # without a mask, NEG_LOGIT marks the excluded positions (what SpanQA outputs)
        s2, e2 = np.where(allowed, s, NEG_LOGIT), np.where(allowed, e, NEG_LOGIT)
        start2, end2, _ = decode_spans(s2, e2, 4)
        assert allowed[np.arange(3), start2].all() and allowed[np.arange(3), end2].all()


def test_decoder_errors():
    z = np.zeros((2, 5))
    with pytest.raises(ValueError, match="same shape"):
        decode_spans(z, np.zeros((2, 4)), 3)
    with pytest.raises(TypeError, match="floating-point"):
        decode_spans(np.zeros((2, 5), int), z, 3)
    with pytest.raises(ValueError, match="positive integer"):
        decode_spans(z, z, 0)
    with pytest.raises(ValueError, match="row 1 has no allowed"):
        decode_spans(z, z, 3, allowed=np.array([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="empty"):
        decode_spans(np.zeros((0, 5)), np.zeros((0, 5)), 3)


# --------------------------------------------------------------------------------------------------
# Metrics (hand-computed)
# --------------------------------------------------------------------------------------------------
def test_normalization():
    assert normalize_answer("The  Bathroom.") == "bathroom"
    assert normalize_answer("an Apple, a pear!") == "apple pear"
    assert normalize_answer("theatre") == "theatre"  # "the" only as a whole word


def test_exact_match_and_f1_by_hand():
    assert exact_match("the bathroom", "Bathroom") == 1.0
    assert exact_match("bathroom", "bedroom") == 0.0
    assert exact_match("kitchen", ["bathroom", "the kitchen"]) == 1.0
    # pred {in, red, kitchen}, truth {kitchen}: P = 1/3, R = 1, F1 = 2·(1/3)/(4/3) = 0.5
    assert token_f1("in the red kitchen", "kitchen") == pytest.approx(0.5)
    # bags: {red, red, box} vs {red, box, box}: common = 2, P = R = 2/3
    assert token_f1("red red box", "red box box") == pytest.approx(2 / 3)
    assert token_f1("garden", "bedroom") == 0.0
    assert token_f1("", "") == 1.0 and token_f1("the", "kitchen") == 0.0
    assert token_f1("big red box", ["red", "big red box"]) == 1.0
    scores = qa_scores(
        ["bathroom", "in the red kitchen", "office"], ["bathroom", "kitchen", "garden"]
    )
    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx((1 + 0.5 + 0) / 3)


def test_metric_errors():
    with pytest.raises(TypeError, match="str"):
        normalize_answer(3)
    with pytest.raises(TypeError, match="true answer"):
        exact_match("a", 3)
    with pytest.raises(ValueError, match="same length"):
        qa_scores(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        qa_scores([], [])
    with pytest.raises(TypeError, match="lists"):
        qa_scores("bathroom", "bathroom")


# --------------------------------------------------------------------------------------------------
# The span model (tiny)
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tok):
    import keras

    keras.utils.set_random_seed(0)
    model = SpanQA(tok.vocab_size, 128, 16, 2, 1)
    enc = encode_qa(RECORDS, tok, 128)
    model(enc.inputs())
    return model, enc


def test_logits_exclude_everything_but_the_story(tiny):
    model, enc = tiny
    out = model(enc.inputs())
    for key in ("start", "end"):
        z = out[key].numpy()
        assert z.shape == enc.ids.shape
        assert (z[~enc.answer_mask] == NEG_LOGIT).all()
        assert (z[enc.answer_mask] > NEG_LOGIT / 2).all()
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        assert (p[~enc.answer_mask] == 0).all()
    start, end = predict_spans(model, enc, 4)
    assert enc.answer_mask[np.arange(3), start].all() and enc.answer_mask[np.arange(3), end].all()
    assert (start <= end).all() and (end - start < 4).all()


def test_padding_invariance(tiny, tok):
    model, enc = tiny
    longer = encode_qa(RECORDS, tok, 128, pad_to=enc.ids.shape[1] + 11)
    a, b = model(enc.inputs()), model(longer.inputs())
    t = enc.ids.shape[1]
    for key in ("start", "end"):
        za, zb = a[key].numpy(), b[key].numpy()[:, :t]
        np.testing.assert_allclose(za[enc.answer_mask], zb[enc.answer_mask], atol=1e-5)


def test_ids_out_of_the_vocabulary_are_refused(tiny):
    model, enc = tiny
    x = enc.inputs()
    bad = dict(x, ids=np.where(enc.padding_mask, model.vocab_size, 0).astype(np.int32))
    with pytest.raises(ValueError, match=r"token ids must be in \[0, "):
        model(bad)
    with pytest.raises(TypeError, match="dict"):
        model(enc.ids)
    with pytest.raises(ValueError, match="empty batch"):
        model({k: v[:0] for k, v in x.items()})


def test_config_round_trip_and_fit(tiny, tok):
    model, enc = tiny
    clone = SpanQA.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    compile_span_model(model, 3e-3, run_eagerly=True)  # no tracing: fast for a tiny model
    hist = model.fit(enc.inputs(), enc.targets(), epochs=8, batch_size=3, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert {"start_loss", "end_loss"} <= set(hist.history)


def test_span_texts_errors(tiny, tok):
    _, enc = tiny
    with pytest.raises(ValueError, match="one index per example"):
        span_texts(enc, [0], [0], tok)
    with pytest.raises(ValueError, match="is not a span"):
        span_texts(enc, [3, 4, 5], [2, 4, 5], tok)


# --------------------------------------------------------------------------------------------------
# Evidence share
# --------------------------------------------------------------------------------------------------
def test_evidence_share_against_a_loop(tiny):
    _, enc = tiny
    rng = np.random.default_rng(0)
    b, t = enc.ids.shape
    w = rng.random((b, 2, 3, t, t))
    w /= w.sum(-1, keepdims=True)
    share, chance = evidence_share(
        w, enc.evidence_mask, enc.answer_mask, enc.question_mask, reduce=False
    )
    for x, layer, h in itertools.product(range(b), range(2), range(3)):
        q = np.nonzero(enc.question_mask[x])[0]
        ev = sum(w[x, layer, h, i, k] for i in q for k in range(t) if enc.evidence_mask[x, k])
        st = sum(w[x, layer, h, i, k] for i in q for k in range(t) if enc.answer_mask[x, k])
        assert share[x, layer, h] == pytest.approx(ev / st)
    assert chance == pytest.approx(enc.evidence_mask.sum(1) / enc.answer_mask.sum(1))
    mean_share, mean_chance = evidence_share(
        w, enc.evidence_mask, enc.answer_mask, enc.question_mask
    )
    assert mean_share.shape == (2, 3) and mean_share == pytest.approx(share.mean(0))
    assert mean_chance == pytest.approx(chance.mean())


def test_uniform_attention_scores_chance(tiny):
    _, enc = tiny
    b, t = enc.ids.shape
    w = np.broadcast_to(enc.padding_mask[:, None, None, None, :], (b, 1, 2, t, t)).astype(float)
    w = w / w.sum(-1, keepdims=True)
    share, chance = evidence_share(
        w, enc.evidence_mask, enc.answer_mask, enc.question_mask, reduce=False
    )
    np.testing.assert_allclose(share[:, 0, 0], chance)


def test_evidence_share_errors(tiny):
    _, enc = tiny
    b, t = enc.ids.shape
    w = np.full((b, 1, 1, t, t), 1.0 / t)
    with pytest.raises(ValueError, match="batch, layers, heads, T, T"):
        evidence_share(w[0], enc.evidence_mask, enc.answer_mask, enc.question_mask)
    with pytest.raises(ValueError, match="shape"):
        evidence_share(w, enc.evidence_mask[:, :-1], enc.answer_mask, enc.question_mask)
    with pytest.raises(ValueError, match="inside story_mask"):
        evidence_share(w, enc.question_mask, enc.answer_mask, enc.question_mask)
    with pytest.raises(ValueError, match="no True"):
        evidence_share(w, enc.evidence_mask, enc.answer_mask, np.zeros((b, t), bool))


# --------------------------------------------------------------------------------------------------
# The shipped checkpoint
# --------------------------------------------------------------------------------------------------
def test_shipped_checkpoint_reaches_the_stated_exact_match():
    from lessons_lib import load_babi

    model, tokenizer, meta = load_qa_checkpoint()
    assert BABI_QA_CHECKPOINT.stat().st_size < 1_000_000
    data = load_babi(task=1, progress=False)
    assert tokenizer.tokens == train_qa_tokenizer(data.train, meta["qa_config"]["bpe_vocab"]).tokens
    test = encode_qa(data.test, tokenizer, model.max_len)
    start, end = predict_spans(model, test, meta["qa_config"]["max_answer_len"])
    scores = qa_scores(span_texts(test, start, end, tokenizer), [r.answer for r in data.test])
    assert scores["exact_match"] >= 0.99  # lesson 12 §6 states this bound
    assert scores["exact_match"] == pytest.approx(meta["test_exact_match"], abs=0.002)
    assert json.loads(BABI_QA_CHECKPOINT.with_name(BABI_QA_CHECKPOINT.name + ".json").read_text())[
        "history"
    ]
