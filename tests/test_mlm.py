"""Masked-language-model pretraining: BERT's masking rule, the tied model, a loss that counts the
chosen positions only, dynamic masking, saving an encoder, and the shipped checkpoint."""

import json
from pathlib import Path

import numpy as np
import pytest

from lessons_lib import (
    Encoder,
    MaskedLanguageModel,
    MaskedLMBatches,
    encoder_forward,
    load_encoder,
    mask_tokens,
    masked_lm_accuracy,
    masked_lm_loss,
    save_encoder,
)
from lessons_lib._backend import keras

PAD, CLS, MASK = 0, 2, 3
SPECIAL = (0, 1, 2, 3)  # [PAD] [UNK] [CLS] [MASK]
V = 50


def _batch(rng, n=400, t=40):
    """[CLS] + random ordinary tokens + padding, rows of random lengths."""
    ids = np.zeros((n, t), dtype="int32")
    lengths = rng.integers(1, t + 1, size=n)
    for i, length in enumerate(lengths):
        ids[i, 0] = CLS
        ids[i, 1:length] = rng.integers(4, V, size=length - 1)
    return ids


def _mask(ids, seed=0, **kw):
    return mask_tokens(ids, mask_id=MASK, vocab_size=V, special_ids=SPECIAL, seed=seed, **kw)


def test_chosen_positions_are_real_ordinary_tokens_and_weights_mark_them(rng):
    ids = _batch(rng)
    inputs, labels, weights = _mask(ids)
    chosen = weights == 1
    assert set(np.unique(weights)) <= {0.0, 1.0} and weights.dtype == np.float32
    assert not chosen[np.isin(ids, SPECIAL)].any()  # never padding, [CLS] or another special
    assert np.array_equal(labels, ids)  # what to restore: the original ids
    assert np.array_equal(inputs[~chosen], ids[~chosen])  # nothing else is touched
    # k = max(1, round(0.15 n)) per row, n = the row's ordinary tokens (none for [CLS] alone)
    n = (~np.isin(ids, SPECIAL)).sum(axis=1)
    k = np.where(n > 0, np.maximum(1, np.floor(0.15 * n + 0.5)), 0)
    assert np.array_equal(chosen.sum(axis=1), k)
    # a replacement by a random token is never a special token
    assert not np.isin(inputs[chosen & (inputs != MASK)], SPECIAL).any()


def test_80_10_10_on_a_large_sample():
    ids = _batch(np.random.default_rng(1), n=4000, t=64)
    inputs, _, weights = _mask(ids, seed=7)
    chosen = weights == 1
    n_chosen = int(chosen.sum())
    share_chosen = n_chosen / (~np.isin(ids, SPECIAL)).sum()
    assert abs(share_chosen - 0.15) < 0.005  # rounding per row moves it a little only
    masked = (inputs[chosen] == MASK).mean()
    unchanged = (inputs[chosen] == ids[chosen]).mean()
    # a random replacement equals the original with probability 1/46: part of "unchanged"
    p_same = 1 / (V - len(SPECIAL))
    expect = {"mask": 0.8, "random": 0.1 * (1 - p_same), "same": 0.1 + 0.1 * p_same}
    got = {"mask": masked, "random": 1 - masked - unchanged, "same": unchanged}
    for key, p in expect.items():
        sigma = np.sqrt(p * (1 - p) / n_chosen)
        assert abs(got[key] - p) < 5 * sigma, (key, got[key], p, sigma)


def test_masking_is_seeded(rng):
    ids = _batch(rng, n=50)
    a, b = _mask(ids, seed=3), _mask(ids, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = _mask(ids, seed=4)
    assert not np.array_equal(a[2], c[2])
    g = _mask(ids, seed=np.random.default_rng(3))  # a Generator works too
    assert np.array_equal(g[0], a[0])


def test_mask_tokens_bad_input(rng):
    ids = _batch(rng, n=3)
    with pytest.raises(ValueError, match=r"integer token ids \[batch, T\]"):
        _mask(ids.astype("float32"))
    with pytest.raises(ValueError, match=r"integer token ids \[batch, T\]"):
        _mask(ids[0])
    with pytest.raises(ValueError, match="empty batch"):
        _mask(ids[:0])
    with pytest.raises(ValueError, match=r"ids out of the vocabulary: 50 at \[0, 1\]"):
        bad = ids.copy()
        bad[0, 1] = 50
        _mask(bad)
    with pytest.raises(ValueError, match="rate must be >= 0 and < 1.0"):
        _mask(ids, rate=1.5)
    with pytest.raises(ValueError, match="rate must be > 0"):
        _mask(ids, rate=0)
    with pytest.raises(ValueError, match="mask_prob \\+ random_prob must be <= 1"):
        _mask(ids, mask_prob=0.8, random_prob=0.3)
    with pytest.raises(ValueError, match=r"special_ids must be ids in 0..49, got \[99\]"):
        mask_tokens(ids, mask_id=MASK, vocab_size=V, special_ids=(0, 99))


def _mlm(rng, pad_id=PAD):
    enc = Encoder(V, 16, 8, 2, 2, pad_id=pad_id)
    model = MaskedLanguageModel(enc)
    model(np.zeros((1, 4), "int32"))
    for w in model.weights:
        base = 1.0 if w.path.endswith("gamma") else 0.0
        w.assign(base + rng.normal(size=w.shape) * 0.3)
    return model


def test_mlm_logits_are_tied_to_the_token_table(rng):
    model = _mlm(rng)
    ids = _batch(rng, n=3, t=9)
    h = encoder_forward(model.encoder, ids)["hidden"]
    table = np.asarray(model.encoder.embed.embeddings, np.float64)
    bias = np.asarray(model.output_bias, np.float64)
    np.testing.assert_allclose(model(ids).numpy(), h @ table.T + bias, atol=5e-5)
    # the only new weight is the output bias: the output matrix IS the token table
    assert model.count_params() == model.encoder.count_params() + V


def test_loss_and_accuracy_count_the_chosen_positions_only(rng):
    ids = _batch(rng, n=6, t=12)
    _, labels, weights = _mask(ids)
    logits = rng.normal(size=(6, 12, V)).astype("float32")
    z = logits.astype(np.float64)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    ce = -np.take_along_axis(logp, labels[..., None], -1)[..., 0]
    chosen = weights == 1
    assert float(masked_lm_loss(labels, logits, weights)) == pytest.approx(ce[chosen].mean(), 1e-5)
    hits = (logits.argmax(-1) == labels)[chosen].mean()
    assert float(masked_lm_accuracy(labels, logits, weights)) == pytest.approx(hits, abs=1e-6)
    # anything at padding or unchosen positions -- logits or labels -- changes nothing
    noisy = np.where(chosen[..., None], logits, rng.normal(size=logits.shape) * 10)
    other = np.where(chosen, labels, (labels + 1) % V)
    for lg, lb in ((noisy, labels), (logits, other)):
        assert float(masked_lm_loss(lb, lg, weights)) == pytest.approx(ce[chosen].mean(), 1e-5)
    # Keras' own loss with sample weights and reduction="mean_with_sample_weight" is the same L
    keras_loss = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="mean_with_sample_weight"
    )
    got = float(keras_loss(labels, logits, sample_weight=weights))
    assert got == pytest.approx(ce[chosen].mean(), 1e-5)
    # no chosen position at all: 0, not NaN
    assert float(masked_lm_loss(labels, logits, np.zeros_like(weights))) == 0.0


def test_compile_and_fit_on_dynamic_masks(rng):
    keras.utils.set_random_seed(0)
    ids = _batch(rng, n=40, t=12)
    batches = MaskedLMBatches(
        ids, 16, mask_id=MASK, vocab_size=V, special_ids=SPECIAL, seed=0, shuffle=True
    )
    assert len(batches) == 3
    first = batches[0]
    assert np.array_equal(batches[0][0], first[0])  # reproducible within an epoch
    batches.on_epoch_end()
    assert not np.array_equal(batches[0][2], first[2])  # new masks (and order) next epoch
    batches.epoch = 0
    batches._order = batches._permutation()
    model = MaskedLanguageModel(Encoder(V, 12, 8, 2, 1, pad_id=PAD))
    model.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight"
        ),
        weighted_metrics=["accuracy"],
        jit_compile=False,  # compiles faster; the model is tiny
    )
    history = model.fit(batches, epochs=2, verbose=0)
    assert batches.epoch >= 1  # Keras called on_epoch_end: the masks changed between epochs
    assert np.isfinite(history.history["loss"]).all()
    x, y, w = _mask(ids, seed=5)
    loss, acc = model.evaluate(x, y, sample_weight=w, batch_size=len(x), verbose=0)
    logits = model(x)
    assert loss == pytest.approx(float(masked_lm_loss(y, logits, w)), rel=1e-4)
    assert acc == pytest.approx(float(masked_lm_accuracy(y, logits, w)), abs=1e-6)


def test_save_and_load_an_encoder(rng, tmp_path):
    model = _mlm(rng)
    ids = _batch(rng, n=2, t=9)
    path = save_encoder(model.encoder, tmp_path / "e.weights.h5", {"command": "test"})
    enc, meta = load_encoder(path)
    assert meta["command"] == "test" and meta["config"]["pad_id"] == PAD
    np.testing.assert_allclose(enc(ids).numpy(), model.encoder(ids).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="must end with .weights.h5"):
        save_encoder(model.encoder, tmp_path / "e.h5")
    with pytest.raises(TypeError, match="lessons_lib.Encoder"):
        save_encoder(model, tmp_path / "m.weights.h5")
    with pytest.raises(TypeError, match="lessons_lib.Encoder"):
        MaskedLanguageModel(keras.layers.Dense(2))
    again = MaskedLanguageModel.from_config(model.get_config())
    again(ids)
    again.set_weights(model.get_weights())
    np.testing.assert_allclose(again(ids).numpy(), model(ids).numpy(), atol=1e-6)


# --------------------------------------------------------------------------------------------------
# the shipped checkpoint
def test_shipped_checkpoint_is_small_and_names_its_command():
    from lessons_lib import SMS_MLM_CHECKPOINT

    assert SMS_MLM_CHECKPOINT.exists(), "run `python -m lessons_lib.mlm`"
    assert SMS_MLM_CHECKPOINT.stat().st_size < 1_000_000
    meta = json.loads(Path(str(SMS_MLM_CHECKPOINT) + ".json").read_text())
    assert meta["command"].startswith("python -m lessons_lib.mlm")
    assert len(meta["tokens"]) == meta["config"]["vocab_size"] == 1000


def test_shipped_checkpoint_reaches_its_stated_masked_accuracy():
    """Loaded with the tokenizer rebuilt from the training split, the encoder restores the
    validation set's masked tokens as well as its .json (and lesson 11 §7) says."""
    from lessons_lib import SMS_MLM, SMS_MLM_CHECKPOINT, encode_texts
    from lessons_lib.data import SMS_SPAM_COLLECTION, cache_path, load_sms_spam

    if not cache_path(SMS_SPAM_COLLECTION).is_file():
        pytest.skip("the SMS Spam Collection is not cached (see lessons_lib.data)")
    data = load_sms_spam(progress=False)
    tok = SMS_MLM.tokenizer(data.train.texts)
    model = MaskedLanguageModel.from_pretrained(SMS_MLM_CHECKPOINT, tokenizer=tok)
    meta = json.loads(Path(str(SMS_MLM_CHECKPOINT) + ".json").read_text())
    ids, _ = encode_texts(tok, data.val.texts, SMS_MLM.max_len)
    specials = [tok.token_to_id(s) for s in ("[PAD]", "[UNK]", "[CLS]", "[MASK]")]
    x, y, w = mask_tokens(
        ids,
        mask_id=tok.token_to_id("[MASK]"),
        vocab_size=tok.vocab_size,
        special_ids=specials,
        seed=meta["val_masking_seed"],
    )
    logits = model.predict(x, batch_size=128, verbose=0)
    acc = float(masked_lm_accuracy(y, logits, w))
    assert acc == pytest.approx(meta["val_masked_accuracy"], abs=2e-3)
    assert acc > 0.2  # far above chance (1/996) and above the commonest token's 3 %
