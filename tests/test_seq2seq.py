"""Tests for lessons_lib.seq2seq: the encoder–decoder model against its NumPy reference, the three
masks as invariances, the label shift and the loss, training with fit, checkpoints, and the bad
inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

import lessons_lib
from lessons_lib import BPETokenizer
from lessons_lib._backend import keras
from lessons_lib.seq2seq import (
    SEQ2SEQ_SPECIAL_TOKENS,
    Decoder,
    EncoderDecoder,
    encode_sources,
    encode_targets,
    encoder_decoder_forward,
    encoder_decoder_param_count,
    load_encoder_decoder,
    save_encoder_decoder,
    sequence_loss,
    shift_targets,
)

PAD, BOS, EOS = 0, 2, 3
SRC = np.array([[5, 6, 7, 8, 0, 0], [9, 10, 0, 0, 0, 0], [4, 5, 6, 7, 8, 9]], dtype=np.int32)
TGT = np.array([[2, 5, 6, 7, 3, 0], [2, 8, 3, 0, 0, 0], [2, 4, 4, 4, 4, 3]], dtype=np.int32)


def tiny(seed: int = 0, **kwargs) -> EncoderDecoder:
    keras.utils.set_random_seed(seed)
    args = dict(
        source_vocab_size=12,
        target_vocab_size=11,
        max_len=8,
        d_model=16,
        num_heads=2,
        num_encoder_layers=2,
        num_decoder_layers=2,
        embeddings_initializer="normal",
    )
    model = EncoderDecoder(**{**args, **kwargs})
    model(SRC[:1, :2], TGT[:1, :2])
    return model


@pytest.fixture(scope="module")
def model() -> EncoderDecoder:
    return tiny()


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"norm_first": False, "tie_embeddings": False, "activation": "relu"},
        {"use_bias": False, "positional": "sinusoidal", "num_decoder_layers": 1},
    ],
)
def test_matches_the_numpy_reference(kwargs):
    m = tiny(**kwargs)
    logits, w = m(SRC, TGT, return_attention=True)
    ref = encoder_decoder_forward(m, SRC, TGT)
    np.testing.assert_allclose(logits.numpy(), ref["logits"], atol=2e-5)
    np.testing.assert_allclose(w["decoder"].numpy(), ref["self_weights"], atol=1e-5)
    np.testing.assert_allclose(w["cross"].numpy(), ref["cross_weights"], atol=1e-5)
    layers = m.num_decoder_layers
    assert logits.shape == (3, 6, 11)
    assert w["encoder"].shape == (3, 2, 2, 6, 6)
    assert w["decoder"].shape == (3, layers, 2, 6, 6)
    assert w["cross"].shape == (3, layers, 2, 6, 6)
    counted = {k: v for k, v in kwargs.items() if k != "activation"}
    counted.setdefault("num_decoder_layers", 2)
    assert m.count_params() == encoder_decoder_param_count(12, 11, 8, 16, 2, **counted)


def test_param_count_by_hand():
    """d = 16, d_ff = 64, V_s = 12, V_t = 11, max_len 8, one layer each, tied."""
    attn, ffn, ln = 4 * 16 * 16 + 4 * 16, 2 * 16 * 64 + 64 + 16, 2 * 16
    encoder = 12 * 16 + 8 * 16 + (attn + ffn + 2 * ln) + ln
    decoder = 11 * 16 + 8 * 16 + (2 * attn + ffn + 3 * ln) + ln
    assert encoder_decoder_param_count(12, 11, 8, 16, 1, 1) == encoder + decoder
    assert encoder_decoder_param_count(12, 11, 8, 16, 1, 1, tie_embeddings=False) == (
        encoder + decoder + 16 * 11
    )


# --- the three masks, as invariances -------------------------------------------------------------


def test_source_padding_changes_nothing(model):
    """Each sentence alone, without padding, gives the logits it gets in the padded batch."""
    batch = model(SRC, TGT).numpy()
    for i in range(len(SRC)):
        n = int((SRC[i] != PAD).sum())
        alone = model(SRC[i : i + 1, :n], TGT[i : i + 1]).numpy()
        np.testing.assert_allclose(batch[i], alone[0], atol=1e-5)
    wider = np.pad(SRC, ((0, 0), (0, 2)), constant_values=PAD)
    np.testing.assert_allclose(model(wider, TGT).numpy(), batch, atol=1e-5)


def test_attention_never_reaches_padding_or_the_future(model):
    _, w = model(SRC, TGT, return_attention=True)
    src_pad, tgt_pad = SRC == PAD, TGT == PAD
    enc, dec, cross = (w[k].numpy() for k in ("encoder", "decoder", "cross"))
    for b in range(len(SRC)):
        assert np.all(enc[b][..., src_pad[b]] == 0)  # no query attends to a padded source key
        assert np.all(cross[b][..., src_pad[b]] == 0)  # nor does any target position
        assert np.all(np.triu(np.ones((6, 6)), 1)[None, None] * dec[b] == 0)  # causal
        real = ~tgt_pad[b]
        assert np.all(dec[b][:, :, :, ~real] == 0)  # padded target keys: weight 0 everywhere
    np.testing.assert_allclose(cross.sum(-1), 1, atol=1e-5)


def test_causal_a_later_target_token_changes_no_earlier_logit(model):
    base = model(SRC, TGT).numpy()
    changed = TGT.copy()
    changed[:, 3] = 7
    out = model(SRC, changed).numpy()
    np.testing.assert_allclose(out[:, :3], base[:, :3], atol=1e-6)
    assert np.abs(out[:, 3:] - base[:, 3:]).max() > 1e-3


def test_the_source_matters(model):
    """Cross-attention is used: another source changes the target's logits."""
    other = SRC.copy()
    other[:, 0] = 11
    assert np.abs(model(other, TGT).numpy() - model(SRC, TGT).numpy()).max() > 1e-3


# --- the label shift and the loss -------------------------------------------------------------


def test_shift_targets_by_hand():
    target = np.array([[BOS, 5, 6, EOS, PAD], [BOS, 7, EOS, PAD, PAD]])
    dec_in, labels, w = shift_targets(target, pad_id=PAD)
    assert dec_in.tolist() == [[BOS, 5, 6, EOS], [BOS, 7, EOS, PAD]]
    assert labels.tolist() == [[5, 6, EOS, PAD], [7, EOS, PAD, PAD]]
    assert w.tolist() == [[1, 1, 1, 0], [1, 1, 0, 0]]
    assert (dec_in.dtype, labels.dtype, w.dtype) == (np.int32, np.int32, np.float32)
    # position t of the input predicts position t + 1 of the target
    np.testing.assert_array_equal(labels, target[:, 1:])
    np.testing.assert_array_equal(dec_in, target[:, :-1])


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([[2]]), "at least 2 columns"),
        (np.zeros((0, 3), dtype=int), "empty batch"),
        (np.array([2, 5, 3]), r"\[batch, T \+ 1\]"),
        (np.array([[2.0, 5.0]]), "integer token ids"),
    ],
)
def test_shift_targets_refuses(bad, match):
    with pytest.raises(ValueError, match=match):
        shift_targets(bad)


def test_sequence_loss_averages_over_real_tokens_only(rng):
    logits = rng.normal(size=(2, 4, 11)).astype("float32")
    labels = np.array([[5, 6, 3, 0], [7, 3, 0, 0]])
    w = (labels != 0).astype("float32")
    z = logits - logits.max(-1, keepdims=True)
    ce = -(z - np.log(np.exp(z).sum(-1, keepdims=True)))[
        np.arange(2)[:, None], np.arange(4), labels
    ]
    expected = (ce * w).sum() / w.sum()
    loss = sequence_loss()
    assert float(loss(labels, logits, sample_weight=w)) == pytest.approx(expected, rel=1e-5)
    # more padding, same real tokens: the same loss (the default reduction would shrink it)
    more = np.concatenate([logits, rng.normal(size=(2, 3, 11)).astype("float32")], axis=1)
    labels_more = np.pad(labels, ((0, 0), (0, 3)))
    w_more = np.pad(w, ((0, 0), (0, 3)))
    assert float(loss(labels_more, more, sample_weight=w_more)) == pytest.approx(expected, rel=1e-5)


def test_fit_learns_to_copy():
    """Keras' own compile/fit, x = (source, decoder input), y = labels, sample_weight. (Run eagerly
    here; the model also runs inside tf.function in tests/test_decoding.py, and lesson 13 trains
    it in graph mode.)"""
    rng = np.random.default_rng(0)
    n = 64
    src = np.zeros((n, 6), np.int32)
    tgt = np.zeros((n, 7), np.int32)
    for i in range(n):
        length = rng.integers(1, 5)
        s = rng.integers(4, 11, size=length)
        src[i, :length] = s
        tgt[i, : length + 2] = [BOS, *s, EOS]
    dec_in, labels, w = shift_targets(tgt)
    m = tiny(source_vocab_size=11, max_len=6, num_encoder_layers=1, num_decoder_layers=1)
    m.compile(
        keras.optimizers.Adam(1e-2),
        loss=sequence_loss(),
        weighted_metrics=["accuracy"],
        run_eagerly=True,  # tracing the train step would take most of this file's time
    )
    before = m.evaluate((src, dec_in), labels, sample_weight=w, verbose=0, return_dict=True)
    h = m.fit((src, dec_in), labels, sample_weight=w, epochs=4, batch_size=32, verbose=0)
    after = m.evaluate((src, dec_in), labels, sample_weight=w, verbose=0, return_dict=True)
    assert len(h.history["loss"]) == 4
    assert after["loss"] < 0.85 * before["loss"], (before, after)  # measured: 0.73
    assert after["accuracy"] > 2 * before["accuracy"]
    assert m.predict((src[:2], dec_in[:2]), verbose=0).shape == (2, 6, 11)


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "src, tgt, error, match",
    [
        (np.array([[5, 6], [0, 0]]), TGT[:2, :3], ValueError, r"row\(s\) \[1\] hold only padding"),
        (np.zeros((0, 3), np.int32), TGT[:0, :3], ValueError, "empty batch"),
        (np.zeros((1, 0), np.int32), TGT[:1, :3], ValueError, "no tokens"),
        (
            np.array([[5, 12]]),
            TGT[:1, :3],
            ValueError,
            r"source_ids holds ids out of the vocab.*12",
        ),
        (np.array([[5, -1]]), TGT[:1, :3], ValueError, r"out of the vocabulary.*-1 at \[0, 1\]"),
        (np.array([[5, 6]]), np.array([[2, 11]]), ValueError, r"target_ids holds ids out of"),
        (np.ones((1, 9), np.int32) * 5, TGT[:1, :3], ValueError, r"9 positions.*max_len=8"),
        (np.array([[5, 6]]), np.full((1, 9), 4), ValueError, r"target_ids has 9 positions"),
        (np.array([[5.0, 6.0]]), TGT[:1, :3], TypeError, "integer token ids"),
        (SRC, TGT[:2], ValueError, "one row per sentence"),
    ],
)
def test_bad_ids_are_refused(model, src, tgt, error, match):
    with pytest.raises(error, match=match):
        model(src, tgt)


def test_fit_checks_before_keras(model):
    m = tiny()
    m.compile("adam", loss=sequence_loss())
    dec_in, labels, w = shift_targets(TGT)
    bad = SRC.copy()
    bad[0, 0] = 99
    with pytest.raises(ValueError, match="source_ids holds ids out of the vocabulary"):
        m.fit((bad, dec_in), labels, sample_weight=w, verbose=0)
    with pytest.raises(ValueError, match=r"x=\(source_ids, target_ids\)"):
        m.fit(SRC, labels, verbose=0)
    with pytest.raises(ValueError, match="hold only padding"):
        m.evaluate((np.zeros_like(SRC), dec_in), labels, verbose=0)
    with pytest.raises(ValueError, match="needs the source and the decoder input"):
        model(SRC)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"pad_id": 12}, "pad_id"),
        ({"bos_id": 11}, "bos_id"),
        ({"eos_id": 0}, "three different ids"),
        ({"d_model": 15}, "divisible"),
        ({"num_decoder_layers": 0}, "num_layers"),
        ({"max_len": 0}, "max_len"),
    ],
)
def test_bad_configuration(kwargs, match):
    args = dict(
        source_vocab_size=12,
        target_vocab_size=11,
        max_len=8,
        d_model=16,
        num_heads=2,
        num_encoder_layers=1,
        num_decoder_layers=1,
    )
    with pytest.raises(ValueError, match=match):
        EncoderDecoder(**{**args, **kwargs})


# --- configuration and checkpoints ----------------------------------------------------------------


def test_get_config_round_trips(model):
    again = EncoderDecoder.from_config(model.get_config())
    assert again.get_config() == model.get_config()
    again(SRC[:1, :2], TGT[:1, :2])
    again.set_weights(model.get_weights())
    np.testing.assert_allclose(again(SRC, TGT).numpy(), model(SRC, TGT).numpy(), atol=1e-6)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert isinstance(clone, EncoderDecoder) and clone.get_config() == model.get_config()
    dec = model.decoder
    assert Decoder.from_config(dec.get_config()).get_config() == dec.get_config()


def toy_tokenizers() -> tuple[BPETokenizer, BPETokenizer]:
    en = BPETokenizer.train(
        "I see the cat. The dog runs.", 40, special_tokens=SEQ2SEQ_SPECIAL_TOKENS
    )
    es = BPETokenizer.train(
        "Veo el gato. El perro corre.", 40, special_tokens=SEQ2SEQ_SPECIAL_TOKENS
    )
    return en, es


def test_checkpoint_round_trip_and_refusals(model, tmp_path):
    en, es = toy_tokenizers()
    path = save_encoder_decoder(
        model, tmp_path / "mt.weights.h5", en, es, metadata={"command": "pytest"}
    )
    meta = json.loads((tmp_path / "mt.weights.h5.json").read_text())
    assert meta["command"] == "pytest" and meta["source_tokens"] == list(en.tokens)
    loaded, meta2 = load_encoder_decoder(path, source_tokenizer=en, target_tokenizer=es)
    np.testing.assert_allclose(loaded(SRC, TGT).numpy(), model(SRC, TGT).numpy(), atol=1e-6)
    assert meta2["config"] == meta["config"]
    into = tiny(seed=5)
    load_encoder_decoder(path, model=into)  # same configuration: loads into it
    np.testing.assert_allclose(into(SRC, TGT).numpy(), model(SRC, TGT).numpy(), atol=1e-6)
    other = tiny(d_model=8)
    with pytest.raises(ValueError, match=r"another configuration: d_ff: .*d_model: checkpoint 16"):
        load_encoder_decoder(path, model=other)
    with pytest.raises(ValueError, match="another target vocabulary"):
        load_encoder_decoder(path, target_tokenizer=en)
    with pytest.raises(FileNotFoundError):
        load_encoder_decoder(tmp_path / "missing.weights.h5")
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        save_encoder_decoder(model, tmp_path / "mt.h5")


# --- token ids from text --------------------------------------------------------------------------


def test_encode_sources_and_targets():
    en, es = toy_tokenizers()
    src = encode_sources(en, ["I see the cat.", "The dog"], max_len=16)
    tgt = encode_targets(es, ["Veo el gato.", "El perro"], max_len=16)
    assert src.shape == (2, 16) and tgt.shape == (2, 17) and src.dtype == np.int32
    assert en.decode(src[0].tolist(), skip_special_tokens=True) == "I see the cat."
    n = len(es.encode("Veo el gato."))
    assert tgt[0, 0] == BOS and tgt[0, n + 1] == EOS and (tgt[0, n + 2 :] == PAD).all()
    assert es.decode(tgt[0, 1 : n + 1].tolist()) == "Veo el gato."
    assert [es.token_to_id(t) for t in SEQ2SEQ_SPECIAL_TOKENS] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"longer than 3 tokens.*texts\[0\]"):
        encode_sources(en, ["I see the cat.", "I"], max_len=3)
    with pytest.raises(ValueError, match=r"longer than 2 tokens"):
        encode_targets(es, ["Veo el gato."], max_len=3)
    with pytest.raises(ValueError, match="is empty"):
        encode_sources(en, ["  "], max_len=3)
    with pytest.raises(TypeError, match="single str"):
        encode_sources(en, "I see", max_len=3)
    plain = BPETokenizer.train("abc", 5)
    with pytest.raises(ValueError, match="no special token '<bos>'"):
        encode_targets(plain, ["abc"], max_len=5)


def test_exports():
    for name in (
        "EncoderDecoder",
        "Decoder",
        "shift_targets",
        "sequence_loss",
        "encode_sources",
        "encode_targets",
        "encoder_decoder_forward",
        "encoder_decoder_param_count",
        "save_encoder_decoder",
        "load_encoder_decoder",
        "SEQ2SEQ_SPECIAL_TOKENS",
    ):
        assert getattr(lessons_lib, name) is getattr(lessons_lib.seq2seq, name)
