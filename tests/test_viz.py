"""lessons_lib.viz: validation, the static forms (text, PNG), the widget's data and state, and
nbconvert's HTML."""

from __future__ import annotations

import base64
import io
import math
import re
import shutil
import subprocess
from pathlib import Path

import matplotlib.image as mpimg
import nbformat
import numpy as np
import pytest
import tomllib

from lessons_lib import causal_mask, sinusoidal_positional_encoding, softmax, thread
from lessons_lib.viz import (
    AttentionExplorer,
    LessonsView,
    PositionalExplorer,
    SoftmaxExplorer,
    StaticView,
    entropy,
    scaled_softmax,
    softmax_jacobian_norm,
)
from lessons_lib.viz._base import CSS_PATH, ESM_PATH, WIDGET_MIME

ROOT = Path(__file__).resolve().parents[1]
ARTICLE_Q = np.array([[0, 7, 18], [15, 31, 51], [36, 59, 82]])
HIGHLIGHT_RGB = np.array([0xE8, 0x59, 0x0C]) / 255


def decode_png(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(io.BytesIO(png), format="png")


def near_color(img: np.ndarray, rgb: np.ndarray, tol: float = 0.06) -> int:
    """How many pixels are within ``tol`` of a colour."""
    return int((np.abs(img[..., :3] - rgb).max(axis=-1) < tol).sum())


@pytest.fixture(scope="module")
def state():
    return thread.forward()


@pytest.fixture
def explorer(state):
    return AttentionExplorer(state["weights"], thread.SENTENCE)


def random_weights(rng, shape, causal=False):
    scores = rng.normal(size=shape)
    if causal:
        scores = np.where(causal_mask(shape[-1]), scores, -np.inf)
    return softmax(scores, axis=-1)


# --- AttentionExplorer: shapes and tokens
# --------------------------------------------------------------------
def test_accepts_2d_3d_4d_and_batched_weights(rng, state):
    w3 = state["weights"]  # [heads, T, T]
    assert AttentionExplorer(w3[0], thread.SENTENCE).weights.shape == (1, 1, 6, 6)
    assert AttentionExplorer(w3, thread.SENTENCE).weights.shape == (1, 2, 6, 6)
    w4 = random_weights(rng, (3, 2, 5, 5))
    assert AttentionExplorer(w4, list("abcde")).weights.shape == (3, 2, 5, 5)
    w5 = random_weights(rng, (4, 3, 2, 5, 5))  # GPT: [batch, layers, heads, T, T]
    v = AttentionExplorer(w5, list("abcde"), batch_index=2)
    np.testing.assert_allclose(v.weights, w5[2])
    assert AttentionExplorer(w5[:1], list("abcde")).weights.shape == (
        3,
        2,
        5,
        5,
    )  # batch of one: no index needed
    mha = random_weights(rng, (2, 4, 3, 7))  # MHA: [batch, heads, T_q, T_k]
    v = AttentionExplorer(mha, ["a", "b", "c"], [str(i) for i in range(7)], batch_index=1)
    assert v.weights.shape == (1, 4, 3, 7) and v.num_heads == 4 and v.heads == [0, 1, 2, 3]
    np.testing.assert_allclose(v.weights[0], mha[1])


def test_tokens_forms(state):
    w = state["weights"]
    assert AttentionExplorer(w, thread.SENTENCE).q_tokens == thread.SENTENCE.split()
    assert AttentionExplorer(w, np.array(state["ids"])).q_tokens == ["0", "1", "2", "3", "0", "1"]
    assert AttentionExplorer(w, [b"to", "be", 2, "not", "to", "be"]).q_tokens[:3] == [
        "to",
        "be",
        "2",
    ]


def test_default_heads_and_mask_detection(rng, state):
    v = AttentionExplorer(state["weights"], thread.SENTENCE)
    assert v.mask_kind == "causal" and np.array_equal(v.allowed, causal_mask(6))
    assert AttentionExplorer(state["weights"], thread.SENTENCE, mask=False).mask_kind == "none"
    full = random_weights(rng, (8, 4, 4))
    many = AttentionExplorer(full, "a b c d")
    assert many.mask_kind == "none" and many.heads == [0, 1, 2, 3]
    # an explicit padding mask (key 3 blocked) is accepted when those weights are 0
    allowed = np.ones((4, 4), dtype=bool)
    allowed[:, 3] = False
    padded = softmax(np.where(allowed, rng.normal(size=(2, 4, 4)), -np.inf), axis=-1)
    v = AttentionExplorer(padded, "a b c pad", mask=allowed.astype(int))
    assert v.mask_kind == "custom" and not v.allowed[:, 3].any()


# --- AttentionExplorer: clear errors --------------------------------------------------------------
@pytest.mark.parametrize("shape", [(6,), (1, 1, 1, 1, 6, 6, 1)])
def test_wrong_rank(shape):
    w = np.full(shape, 1.0 / shape[-1])
    with pytest.raises(
        ValueError, match=r"must have shape \[T_q, T_k\], \[heads, T_q, T_k\].*got shape"
    ):
        AttentionExplorer(w, ["x"] * 6)


def test_batched_5d_needs_batch_index(rng):
    w5 = random_weights(rng, (2, 1, 1, 3, 3))
    with pytest.raises(ValueError, match="batch of 2 sequences.*batch_index="):
        AttentionExplorer(w5, "a b c")
    with pytest.raises(ValueError, match="batch_index 2 is out of range.*valid: 0..1"):
        AttentionExplorer(w5, "a b c", batch_index=2)
    with pytest.raises(ValueError, match="no batch"):
        AttentionExplorer(w5[0, 0, 0], "a b c", batch_index=0)


def test_integer_weights_are_refused():
    with pytest.raises(TypeError, match="floating-point"):
        AttentionExplorer(np.eye(3, dtype=int), "a b c")


def test_token_length_mismatch(state):
    with pytest.raises(ValueError, match=r"tokens has 5 items but the weights have T_q = 6"):
        AttentionExplorer(state["weights"], "to be or not to")
    with pytest.raises(ValueError, match=r"key_tokens has 4 items but the weights have T_k = 6"):
        AttentionExplorer(state["weights"], thread.SENTENCE, key_tokens="a b c d")
    with pytest.raises(ValueError, match="cross-attention.*key_tokens="):
        AttentionExplorer(np.full((2, 3), 1 / 3), "a b")
    with pytest.raises(ValueError, match="empty"):
        AttentionExplorer(state["weights"], [])


def test_rows_must_be_distributions(state):
    scores = state["scores"]  # before the softmax
    with pytest.raises(ValueError, match=r"(must be >= 0|sum to 1).*softmax"):
        AttentionExplorer(scores, thread.SENTENCE)
    w = state["weights"].copy()
    w[1, 4] *= 1.5
    with pytest.raises(ValueError, match=r"row at layer 0, head 1, query 4 sums to 1\.5"):
        AttentionExplorer(w, thread.SENTENCE)
    w = state["weights"].copy()
    w[0, 2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        AttentionExplorer(w, thread.SENTENCE)
    # the transposed matrix (keys on the wrong axis) is caught too
    with pytest.raises(ValueError, match="sum to 1"):
        AttentionExplorer(state["weights"].transpose(0, 2, 1), thread.SENTENCE)


def test_mask_errors(rng, state):
    with pytest.raises(ValueError, match="not 0 where the mask blocks.*inverted"):
        AttentionExplorer(state["weights"], thread.SENTENCE, mask=~causal_mask(6))
    with pytest.raises(ValueError, match=r"mask must have shape \[T_q, T_k\] = \(6, 6\)"):
        AttentionExplorer(state["weights"], thread.SENTENCE, mask=causal_mask(5))
    with pytest.raises(ValueError, match="causal mask needs T_q == T_k"):
        AttentionExplorer(np.full((2, 3), 1 / 3), "a b", "x y z", mask="causal")
    with pytest.raises(ValueError, match="mask must be None, 'causal'"):
        AttentionExplorer(state["weights"], thread.SENTENCE, mask="upper")


def test_index_out_of_range(explorer):
    with pytest.raises(
        ValueError, match=r"head 2 is out of range: this explorer has 2 heads \(valid: 0..1\)"
    ):
        explorer.heads = [0, 2]
    with pytest.raises(
        ValueError, match=r"layer 1 is out of range: this explorer has 1 layers \(valid: 0..0\)"
    ):
        explorer.layer = 1
    with pytest.raises(ValueError, match=r"query 6 is out of range.*6 query positions"):
        explorer.select(query=6)
    with pytest.raises(ValueError, match="out of range"):
        explorer.top_keys(0, head=-1)
    with pytest.raises(TypeError, match="integer index"):
        explorer.layer = 0.0
    with pytest.raises(ValueError, match="non-empty list"):
        explorer.heads = []
    with pytest.raises(ValueError, match="no query is selected"):
        explorer.row()
    assert explorer.heads == [0, 1] and explorer.layer == 0  # a refused change changes nothing


# --- AttentionExplorer: the numbers ---------------------------------------------------------------
def test_rows_and_top_keys_match_the_weights(explorer, state):
    explorer.select(query=2, heads="all")
    np.testing.assert_allclose(explorer.row(), state["weights"][0, 2])
    top = explorer.top_keys(head=0)
    assert [(j, tok) for j, tok, _ in top] == [(2, "or"), (1, "be"), (0, "to")]
    assert top[0][2] == pytest.approx(state["weights"][0, 2, 2])
    assert [j for j, _, _ in explorer.top_keys(3, head=1, k=6)] == list(
        np.argsort(-state["weights"][1, 3], kind="stable")
    )


def test_from_model_gpt_and_layers():
    import keras

    from lessons_lib import GPT, MultiHeadAttention, TransformerBlock

    keras.utils.set_random_seed(0)
    gpt = GPT(vocab_size=6, max_len=8, d_model=8, num_heads=2, num_layers=2)
    ids = np.array([[0, 1, 2, 3, 0, 1], [1, 1, 1, 1, 1, 1]])
    v = AttentionExplorer.from_model(gpt, ids, vocab=thread.VOCAB, batch_index=0, query=5)
    assert (
        v.weights.shape == (2, 2, 6, 6)
        and v.q_tokens == thread.SENTENCE.split()
        and v.mask_kind == "causal"
    )
    _, w = gpt(ids, return_attention=True)
    np.testing.assert_allclose(v.weights, np.asarray(w)[0], atol=1e-7)
    assert AttentionExplorer.from_model(gpt, ids[1]).q_tokens == ["1"] * 6

    rng = np.random.default_rng(1)
    x, ctx = (
        rng.normal(size=(1, 3, 8)).astype("float32"),
        rng.normal(size=(1, 5, 8)).astype("float32"),
    )
    mha = MultiHeadAttention(8, 4)
    v = AttentionExplorer.from_model(mha, x[0], "a b c", "k0 k1 k2 k3 k4", context=ctx[0])
    assert v.weights.shape == (1, 4, 3, 5) and v.mask_kind == "none"
    causal = AttentionExplorer.from_model(mha, x, "a b c", call_kwargs={"use_causal_mask": True})
    assert causal.mask_kind == "causal"
    block = TransformerBlock(8, 2, 16, cross_attention=True)
    assert AttentionExplorer.from_model(
        block, x, "a b c", "1 2 3 4 5", context=ctx, which="cross"
    ).weights.shape == (1, 2, 3, 5)
    with pytest.raises(ValueError, match="pass tokens="):
        AttentionExplorer.from_model(mha, x)
    with pytest.raises(TypeError, match="from_model expects"):
        AttentionExplorer.from_model(object(), x, "a b c")


def test_from_model_encoder_decoder_cross_attention_without_padding():
    import keras

    from lessons_lib import EncoderDecoder

    keras.utils.set_random_seed(0)
    model = EncoderDecoder(12, 10, 8, 8, 2, 1, 2)
    src = np.array([[5, 6, 7, 0, 0], [5, 6, 7, 8, 9]])  # sentence 0 is padded
    tgt = np.array([[2, 4, 5, 0], [2, 4, 6, 7]])
    v = AttentionExplorer.from_model(
        model, (src, tgt), which="cross", tokens="<bos> a b", key_tokens="x y z"
    )
    _, w = model(src, tgt, return_attention=True)
    assert v.weights.shape == (2, 2, 3, 3) and v.mask_kind == "none"
    np.testing.assert_allclose(v.weights, np.asarray(w["cross"])[0, :, :, :3, :3], atol=1e-7)
    # with the padding cut off, the rows still sum to 1: the padded keys had weight 0
    enc = AttentionExplorer.from_model(
        model, (src, tgt), which="encoder", tokens="u v w x y", batch_index=1
    )
    assert enc.weights.shape == (1, 2, 5, 5)
    self_ = AttentionExplorer.from_model(model, (src[1], tgt[1]), which="decoder", tokens="a b c d")
    assert self_.mask_kind == "causal"
    with pytest.raises(ValueError, match=r"inputs=\(source_ids, target_ids\)"):
        AttentionExplorer.from_model(model, src, tokens="a")
    with pytest.raises(ValueError, match="which must be 'cross'"):
        AttentionExplorer.from_model(model, (src, tgt), which="self", tokens="a")


# --- AttentionExplorer: static form ---------------------------------------------------------------
def test_text_repr_is_a_deterministic_table():
    w = np.array([[[0.75, 0.25], [0.1, 0.9]]])
    v = AttentionExplorer(w, ["hello", "world"], query=1)
    assert (
        repr(v)
        == v.text()
        == "\n".join(
            [
                "AttentionExplorer · 1 layer × 1 head · 2 queries × 2 keys · no mask",
                "shown: layer 0 · head 0 · query 1 'world'",
                "layer 0 · head 0 · top keys of each query (index:token weight)",
                "    0 hello → 0:hello 0.750  1:world 0.250",
                " ▶  1 world → 1:world 0.900  0:hello 0.100",
            ]
        )
    )


def test_text_repr_of_the_thread(state):
    text = AttentionExplorer(state["weights"], thread.SENTENCE).text()
    assert text == AttentionExplorer(state["weights"].copy(), thread.SENTENCE).text()
    assert "1 layer × 2 heads · 6 queries × 6 keys · causal mask" in text
    assert "    2 or  → 2:or 0.999  1:be 0.001" in text  # lesson 04's number
    assert "no query selected" in text and "0x" not in text


def test_png_shows_the_heatmaps_and_the_selected_row(state):
    v = AttentionExplorer(state["weights"], thread.SENTENCE, heads=[0])
    img = decode_png(v.to_png())
    assert img.ndim == 3 and img.shape[0] > 150 and img.shape[1] > 150
    assert img[..., :3].std() > 0.1  # not blank
    assert near_color(img, np.array([8, 48, 107]) / 255) > 50  # dark blue: weights near 1
    grey = near_color(img, np.array([0xE6] * 3) / 255, tol=0.01)  # the causal mask's blocked cells
    assert grey > 2000
    assert near_color(img, HIGHLIGHT_RGB) == 0  # no query, no highlight
    two = decode_png(v.select(heads=[0, 1], query=2).to_png())
    assert near_color(two, HIGHLIGHT_RGB) > 100  # the outlined row
    assert two.shape[1] > img.shape[1] * 1.5 and two.shape[0] > img.shape[0]  # 2 panels + row bars
    unmasked = decode_png(v.select(show_mask=False).to_png())
    assert near_color(unmasked, np.array([0xE6] * 3) / 255, tol=0.01) < grey / 10


def test_png_of_a_large_model_and_odd_tokens(rng):
    w = random_weights(rng, (2, 8, 40, 40), causal=True)
    tokens = ["$x$", "a\nb", "中文"] + [f"t{i}" for i in range(37)]
    v = AttentionExplorer(w, tokens, heads="all", query=39)
    img = decode_png(v.to_png())
    assert img.shape[1] > 600 and img[..., :3].std() > 0.1
    assert (
        "(heads 4, 5, 6, 7 are shown in the picture" in v.text() and "… 27 more queries" in v.text()
    )


# --- the widget: data, state sync, MIME bundle
# ----------------------------------------------------------------
def test_widget_carries_the_data(explorer, state):
    w = explorer.widget
    assert isinstance(w, LessonsView) and w.kind == "attention"
    values = np.frombuffer(w.values, dtype="<f4").reshape(1, 2, 6, 6)
    np.testing.assert_allclose(values[0], state["weights"], atol=1e-7)
    assert (
        w.spec["q_tokens"] == thread.SENTENCE.split()
        and w.spec["mask"] == causal_mask(6).astype(int).ravel().tolist()
    )
    assert w.state == {"layer": 0, "heads": [0, 1], "query": None, "show_mask": True}
    assert str(w._esm) == ESM_PATH.read_text() and str(w._css) == CSS_PATH.read_text()


def test_state_syncs_both_ways(explorer):
    w = explorer.widget
    explorer.select(heads=1, query=4)
    assert w.state == {"layer": 0, "heads": [1], "query": 4, "show_mask": True}
    w.state = {"layer": 0, "heads": [0, 1], "query": 3, "show_mask": False}  # as the browser would
    assert explorer.query == 3 and explorer.heads == [0, 1] and not explorer.show_mask
    assert "▶  3 not" in explorer.text()
    w.state = {"layer": 5, "heads": [0], "query": 0, "show_mask": True}  # invalid: ignored
    assert explorer.query == 3


def test_mimebundle_has_text_png_and_the_widget(explorer):
    data = explorer._repr_mimebundle_()
    assert set(data) == {"text/plain", "image/png", WIDGET_MIME}
    assert data["text/plain"] == explorer.text()
    assert decode_png(base64.b64decode(data["image/png"])).shape[0] > 100
    assert data[WIDGET_MIME]["model_id"] == explorer.widget.model_id
    assert set(explorer._repr_mimebundle_(include=["text/plain"])) == {"text/plain"}
    assert set(explorer._repr_mimebundle_(exclude=[WIDGET_MIME])) == {"text/plain", "image/png"}
    from IPython.core.formatters import DisplayFormatter

    formatted, _ = DisplayFormatter().format(explorer)  # what IPython sends to the front end
    assert {"text/plain", "image/png", WIDGET_MIME} <= set(formatted)
    assert formatted["text/plain"] == explorer.text()
    static = explorer.static()
    assert isinstance(static, StaticView) and set(static._repr_mimebundle_()) == {
        "text/plain",
        "image/png",
    }
    assert repr(static) == explorer.text()


# --- SoftmaxExplorer ------------------------------------------------------------------------------
def test_softmax_numbers():
    s = np.array([1.0, 2.0, 3.0, -1.0])
    np.testing.assert_allclose(scaled_softmax(s, 2.0, 4), softmax(s / 4.0))
    np.testing.assert_allclose(scaled_softmax(s, 2.0, 4, scale=False), softmax(s / 2.0))
    assert entropy(np.full(5, 0.2)) == pytest.approx(math.log(5))
    assert entropy([1.0, 0.0, 0.0]) == 0.0
    p = softmax(s)
    assert softmax_jacobian_norm(p) == pytest.approx(np.linalg.norm(np.diag(p) - np.outer(p, p)))
    v = SoftmaxExplorer(s, "a b c d", d_k=16, temperature=0.5)
    np.testing.assert_allclose(v.distribution(), softmax(s / (0.5 * 4)))
    np.testing.assert_allclose(v.logits(), s / 2)
    assert v.entropy() == pytest.approx(entropy(v.distribution()))
    assert 16 in v.dk_choices and 3 in SoftmaxExplorer(s, d_k=3).dk_choices


def test_softmax_article_example_saturates():
    v = SoftmaxExplorer(ARTICLE_Q @ ARTICLE_Q.T, d_k=3)
    np.testing.assert_allclose(v.scores[0], [373, 1135, 1889])
    for row in range(3):
        v.row = row
        assert v.is_saturated() and v.entropy() < 1e-12
        np.testing.assert_allclose(v.distribution(), [0, 0, 1], atol=1e-100)
    text = v.text()
    assert (
        "entropy 0.000 nats (max log 3 = 1.099) · top weight 1.000" in text and "saturated" in text
    )
    v.select(d_k=4096, temperature=100.0, row=0)  # divide by 6400: spread out again
    assert not v.is_saturated() and v.entropy() > 1.0 and "saturated" not in v.text()


def test_softmax_text_is_deterministic():
    v = SoftmaxExplorer([2.0, 1.0, 0.0], ["cat", "dog", "eel"], d_k=4, temperature=1.0)
    assert v.text() == "\n".join(
        [
            "SoftmaxExplorer · row 0 (1 of 1) · 3 keys · d_k = 4, divided by √d_k = 2.000 · "
            "temperature 1.000",
            "                              cat      dog      eel",
            "scores                      2.000    1.000    0.000",
            "logits = scores / τ·√d_k    1.000    0.500    0.000",
            "weights                     0.506    0.307    0.186",
            "entropy 1.020 nats (max log 3 = 1.099) · top weight 0.506 · "
            "effective keys e^H = 2.77 · ‖diag(p) − ppᵀ‖ = 0.451",
        ]
    )


def test_softmax_errors():
    with pytest.raises(ValueError, match="fewer than 2"):
        SoftmaxExplorer([1.0])
    with pytest.raises(ValueError, match="one row"):
        SoftmaxExplorer(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="finite"):
        SoftmaxExplorer([1.0, np.inf])
    with pytest.raises(TypeError, match="numbers"):
        SoftmaxExplorer(["a", "b"])
    with pytest.raises(ValueError, match="labels has 2 items but there are 3 keys"):
        SoftmaxExplorer([1, 2, 3], ["a", "b"])
    v = SoftmaxExplorer([[1, 2, 3], [3, 2, 1]])
    with pytest.raises(ValueError, match=r"temperature must be in \[0.01, 100\]"):
        v.temperature = 0
    with pytest.raises(ValueError, match="d_k must be a positive integer"):
        v.d_k = 0
    with pytest.raises(ValueError, match=r"row 2 is out of range: these scores has 2 rows"):
        v.row = 2
    with pytest.raises(TypeError, match="scale must be True or False"):
        v.scale = "yes"


def test_softmax_png_and_widget():
    v = SoftmaxExplorer(ARTICLE_Q @ ARTICLE_Q.T, d_k=3, labels=["k1", "k2", "k3"])
    img = decode_png(v.to_png())
    assert img.shape[1] > 500 and img[..., :3].std() > 0.1
    assert near_color(img, np.array([8, 81, 156]) / 255) > 300  # the saturated bar, dark
    assert near_color(img, HIGHLIGHT_RGB) > 10  # the marker on the entropy curve
    assert v.widget.spec["rows"][0] == [373.0, 1135.0, 1889.0]
    v.widget.state = {"row": 1, "d_k": 64, "scale": True, "temperature": 2.5}
    assert (v.row, v.d_k, v.temperature) == (1, 64, 2.5)
    spread = decode_png(v.select(d_k=4096, temperature=100.0).to_png())
    assert near_color(spread, np.array([8, 81, 156]) / 255) < near_color(
        img, np.array([8, 81, 156]) / 255
    )


# --- PositionalExplorer ---------------------------------------------------------------------------
def test_positional_numbers():
    v = PositionalExplorer(40, 16, reference=5, position=12)
    np.testing.assert_allclose(v.encodings, sinusoidal_positional_encoding(40, 16))
    dots = v.dot_products()
    k = np.arange(40) - 5
    omegas = 10000.0 ** (-np.arange(0, 16, 2) / 16)
    np.testing.assert_allclose(dots, np.cos(np.outer(k, omegas)).sum(axis=1), atol=1e-12)
    assert dots[5] == pytest.approx(8.0)  # |PE|^2 = d_model / 2
    assert v.dot_products(10)[13] == pytest.approx(v.dot_products(20)[23])  # distance only
    assert v.wavelength(0) == pytest.approx(2 * np.pi) and v.wavelength(3) == pytest.approx(
        2 * np.pi * 10**0.5
    )
    assert v.dims == [0, 2, 4, 6]


def test_positional_text_png_and_errors():
    v = PositionalExplorer(16, 8, dims=[1, 0], reference=2, position=6)
    text = v.text()
    assert text == PositionalExplorer(16, 8, dims=[0, 1], reference=2, position=6).text()
    assert "reference 2 · position 6 · distance 4" in text and "PE[2]·PE[6] = " in text
    assert "0 (sin, ω = 1, wavelength 6.283); 1 (cos" in text
    img = decode_png(v.to_png())
    assert img.shape[1] > 600 and img[..., :3].std() > 0.1 and near_color(img, HIGHLIGHT_RGB) > 20
    assert np.frombuffer(v.widget.values, "<f4").shape == (16 * 8,)
    with pytest.raises(ValueError, match=r"dimension 8 is out of range.*valid: 0..7"):
        v.dims = [8]
    with pytest.raises(ValueError, match=r"position 16 is out of range"):
        v.position = 16
    with pytest.raises(ValueError, match="even d_model"):
        PositionalExplorer(8, 5)
    with pytest.raises(ValueError, match="at most 10 dimensions"):
        PositionalExplorer(8, 32, dims=list(range(11)))
    with pytest.raises(ValueError, match="too large"):
        PositionalExplorer(1024, 1024)


# --- the shipped front end ------------------------------------------------------------------------
def test_front_end_is_local_and_packaged():
    js = ESM_PATH.read_text()
    assert "export default" in js and "render" in js
    assert not re.search(
        r"^\s*import\s|\bimport\(|\bfetch\(|XMLHttpRequest|https?://(?!www\.w3\.org/2000/svg)",
        js,
        re.M,
    ), "viz.js must not load anything"
    assert not re.search(r"@import|url\(\s*['\"]?https?:", CSS_PATH.read_text())
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["lessons_lib"]
    assert any(Path("static/viz.js").match(p) for p in patterns) and any(
        Path("static/viz.css").match(p) for p in patterns
    )


def test_front_end_parses_as_an_es_module(tmp_path):
    node = Path(__import__("playwright").__file__).parent / "driver" / "node"
    if not node.exists():
        node = shutil.which("node")
    if not node:
        pytest.skip("no node binary to syntax-check viz.js")
    module = tmp_path / "viz.mjs"
    module.write_text(ESM_PATH.read_text())
    result = subprocess.run(
        [str(node), "--check", str(module)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


# --- nbconvert shows the PNG ----------------------------------------------------------------------
def test_nbconvert_html_shows_the_png_forms(tmp_path):
    """Execute a small notebook with the three views, convert it to HTML: each view is an <img> with
    a data URI."""
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
    }
    nb.cells = [
        nbformat.v4.new_code_cell(src)
        for src in (
            "import numpy as np\nfrom lessons_lib import thread\n"
            "from lessons_lib.viz import AttentionExplorer, SoftmaxExplorer, PositionalExplorer",
            "AttentionExplorer(thread.forward()['weights'], thread.SENTENCE, query=2)",
            "SoftmaxExplorer([373, 1135, 1889], d_k=3)",
            "PositionalExplorer(16, 8)",
        )
    ]
    # Executed without storing widget state. With it (nbclient's default), nbconvert would prefer
    # the live view, which an HTML page can only load from a CDN; JupyterLab ignores stored state
    # anyway and shows the PNG until the cell is re-run, so notebooks gain nothing from storing it.
    NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        store_widget_state=False,
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    outputs = [o for c in nb.cells[1:] for o in c.outputs]
    assert len(outputs) == 3 and all(
        {"text/plain", "image/png", WIDGET_MIME} <= set(o.data) for o in outputs
    )
    assert "2 or  → 2:or 0.999" in outputs[0].data["text/plain"]
    html, _ = HTMLExporter().from_notebook_node(nb)
    images = re.findall(r'<img[^>]+src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 3
    for b64 in images:
        assert decode_png(base64.b64decode(b64))[..., :3].std() > 0.05
    assert "application/vnd.jupyter.widget-view+json" not in html
