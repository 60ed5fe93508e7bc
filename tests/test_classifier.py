"""The sequence classifier: NumPy reference, padding invariance, fit on ids alone, a pretrained
start, the config round trip and bad input."""

import numpy as np
import pytest

from lessons_lib import (
    Encoder,
    SequenceClassifier,
    cls_pool,
    encoder_forward,
    mean_pool,
    save_encoder,
)
from lessons_lib._backend import keras

V, T = 30, 10
IDS = np.array([[2, 5, 6, 7, 0, 0], [2, 9, 9, 9, 9, 8], [2, 4, 0, 0, 0, 0]], dtype="int32")


def _classifier(rng, pooling="cls", pad_id=0, dropout=0.0):
    enc = Encoder(V, T, 8, 2, 2, pad_id=pad_id)
    clf = SequenceClassifier(enc, 3, pooling=pooling, dropout=dropout)
    clf(IDS)
    for w in clf.weights:  # random γ, β and biases too, so that nothing hides behind a 1 or a 0
        base = 1.0 if w.path.endswith("gamma") else 0.0
        w.assign(base + rng.normal(size=w.shape) * 0.3)
    return clf


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_logits_match_a_numpy_reference(pooling, rng):
    clf = _classifier(rng, pooling)
    h = encoder_forward(clf.encoder, IDS)["hidden"]
    mask = IDS != 0
    u = cls_pool(h) if pooling == "cls" else mean_pool(h, mask)
    kernel, bias = (np.asarray(v, np.float64) for v in clf.head.weights)
    np.testing.assert_allclose(clf(IDS).numpy(), u @ kernel + bias, atol=5e-5)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_logits_do_not_depend_on_the_amount_of_padding(pooling, rng):
    clf = _classifier(rng, pooling)
    short = clf(IDS).numpy()
    for extra in (1, 4):
        longer = clf(np.pad(IDS, ((0, 0), (0, extra)))).numpy()
        np.testing.assert_allclose(longer, short, atol=1e-6)
    # the control: the same weights without the padding mask attend to padding, and move
    unmasked = _classifier(np.random.default_rng(0), pooling, pad_id=None)
    a = unmasked(IDS).numpy()
    b = unmasked(np.pad(IDS, ((0, 0), (0, 4)))).numpy()
    assert np.abs(a - b).max() > 1e-3


def test_fit_on_ids_alone_learns_a_simple_rule():
    """Label 1 when token 7 occurs anywhere in the message (the encoder must look everywhere)."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    n = 96
    lengths = rng.integers(2, T, size=n)
    ids = np.zeros((n, T), dtype="int32")
    for i, length in enumerate(lengths):
        ids[i, 0] = 2
        ids[i, 1:length] = rng.choice([4, 5, 6, 8, 9], size=length - 1)
    labels = rng.integers(0, 2, size=n)
    where = rng.integers(1, lengths)
    ids[np.arange(n), where] = np.where(labels == 1, 7, ids[np.arange(n), where])
    clf = SequenceClassifier(Encoder(V, T, 16, 2, 1, pad_id=0), 2)
    clf.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=False,  # compiles faster; the model is tiny
    )
    history = clf.fit(ids, labels, batch_size=32, epochs=15, verbose=0)
    assert history.history["accuracy"][-1] > 0.9
    assert history.history["loss"][-1] < history.history["loss"][0] / 2


def test_config_round_trip_and_serialization(rng):
    clf = _classifier(rng, "mean", dropout=0.2)
    again = SequenceClassifier.from_config(clf.get_config())
    again(IDS)
    again.set_weights(clf.get_weights())
    np.testing.assert_allclose(again(IDS).numpy(), clf(IDS).numpy(), atol=1e-6)
    assert (again.pooling, again.dropout, again.num_classes) == ("mean", 0.2, 3)
    assert again.encoder.pad_id == 0
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(clf))
    assert isinstance(restored, SequenceClassifier) and isinstance(restored.encoder, Encoder)


def test_from_pretrained_starts_from_the_saved_encoder(rng, tmp_path):
    from lessons_lib import CharTokenizer

    tok = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyz", special_tokens=("[PAD]", "[CLS]"))
    enc = Encoder(tok.vocab_size, T, 8, 2, 1, pad_id=0)
    enc(IDS)
    path = save_encoder(enc, tmp_path / "enc.weights.h5", {"tokens": list(tok.tokens)})
    clf = SequenceClassifier.from_pretrained(path, 2, pooling="mean", tokenizer=tok)
    clf(IDS)
    for a, b in zip(clf.encoder.weights, enc.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    other = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyZ", special_tokens=("[PAD]", "[CLS]"))
    with pytest.raises(ValueError, match="another vocabulary.*first difference at id 2: 'Z'"):
        SequenceClassifier.from_pretrained(path, 2, tokenizer=other)
    with pytest.raises(FileNotFoundError, match="python -m lessons_lib.mlm"):
        SequenceClassifier.from_pretrained(tmp_path / "nope.weights.h5", 2)


def test_bad_input(rng):
    clf = _classifier(rng)
    clf.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    y = np.array([0, 1, 2])
    with pytest.raises(
        ValueError, match=r"labels outside the classes 0..2 \(num_classes=3\): 3 at 1"
    ):
        clf.fit(IDS, np.array([0, 3, 1]), verbose=0)
    with pytest.raises(ValueError, match="labels outside the classes.*-1 at 0"):
        clf.evaluate(IDS, np.array([-1, 0, 1]), verbose=0)
    with pytest.raises(ValueError, match="labels outside the classes"):
        clf.fit(IDS, y, validation_data=(IDS, np.array([0, 5, 1])), verbose=0)
    with pytest.raises(TypeError, match="class names to ids"):
        clf.fit(IDS, np.array(["ham", "spam", "ham"]), verbose=0)
    with pytest.raises(ValueError, match="got 2 labels for 3 sequences"):
        clf.fit(IDS, y[:2], verbose=0)
    with pytest.raises(ValueError, match=r"ids out of the vocabulary \(valid ids are 0..29.*30 at"):
        clf(np.array([[2, 30, 0]], dtype="int32"))
    with pytest.raises(ValueError, match="ids out of the vocabulary.*-1 at"):
        clf.predict(np.array([[2, -1, 0]], dtype="int32"), verbose=0)
    with pytest.raises(ValueError, match="ids out of the vocabulary"):
        clf.fit(np.array([[2, 99]], dtype="int32"), np.array([1]), verbose=0)
    with pytest.raises(ValueError, match="empty batch"):
        clf.predict(np.zeros((0, 4), dtype="int32"), verbose=0)
    with pytest.raises(ValueError, match="empty batch"):
        clf(np.zeros((0, 4), dtype="int32"))
    with pytest.raises(TypeError, match="integer token ids"):
        clf.predict(np.zeros((2, 4), dtype="float32"), verbose=0)
    with pytest.raises(ValueError, match="exceeds the encoder's max_len=10"):
        clf.predict(np.zeros((1, 11), dtype="int32"), verbose=0)
    enc = Encoder(V, T, 8, 2, 1, pad_id=0)
    with pytest.raises(ValueError, match=r"pooling must be one of \('cls', 'mean'\), got 'max'"):
        SequenceClassifier(enc, 2, pooling="max")
    with pytest.raises(ValueError, match="num_classes must be at least 2, got 1"):
        SequenceClassifier(enc, 1)
    with pytest.raises(TypeError, match="encoder must be a lessons_lib.Encoder"):
        SequenceClassifier(keras.layers.Dense(3), 2)


def test_save_and_load_classifier_round_trip(rng, tmp_path):
    from lessons_lib import CharTokenizer, load_classifier, save_classifier

    tok = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyz", special_tokens=("[PAD]", "[CLS]"))
    clf = SequenceClassifier(Encoder(tok.vocab_size, T, 8, 2, 1, pad_id=0), 2, pooling="mean")
    clf(IDS)
    for w in clf.weights:
        w.assign(rng.normal(size=w.shape) * 0.3)
    path = save_classifier(clf, tmp_path / "clf.weights.h5", {"tokens": list(tok.tokens), "x": 1})
    again, meta = load_classifier(path, tokenizer=tok)
    assert meta["x"] == 1 and again.pooling == "mean" and again.encoder.pad_id == 0
    np.testing.assert_array_equal(again(IDS).numpy(), clf(IDS).numpy())
    other = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyZ", special_tokens=("[PAD]", "[CLS]"))
    with pytest.raises(ValueError, match="another vocabulary.*first difference at id 2: 'Z'"):
        load_classifier(path, tokenizer=other)
    with pytest.raises(FileNotFoundError, match="python -m lessons_lib.classifier"):
        load_classifier(tmp_path / "nope.weights.h5")
    with pytest.raises(ValueError, match=r"must end with \.weights\.h5"):
        save_classifier(clf, tmp_path / "clf.h5")
    with pytest.raises(ValueError, match="not built"):
        save_classifier(SequenceClassifier(Encoder(V, T, 8, 2, 1), 2), tmp_path / "x.weights.h5")
    with pytest.raises(TypeError, match="SequenceClassifier"):
        save_classifier(clf.encoder, tmp_path / "x.weights.h5")


def test_the_shipped_classifier_scores_what_its_json_records():
    """checkpoints/sms_classifier.weights.h5 (python -m lessons_lib.classifier), on the SMS test
    split with the tokenizer rebuilt from the training split: the recorded test figures."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    from lessons_lib import SMS_MLM, encode_texts, load_classifier, load_sms_spam

    data = load_sms_spam(progress=False)
    tok = SMS_MLM.tokenizer(data.train.texts)
    model, meta = load_classifier(tokenizer=tok)
    x = encode_texts(tok, data.test.texts, SMS_MLM.max_len)[0]
    pred = np.concatenate([model(x[i : i + 256]).numpy() for i in range(0, len(x), 256)]).argmax(1)
    y = np.asarray(data.test.labels)
    assert accuracy_score(y, pred) == pytest.approx(meta["test"]["accuracy"], abs=1e-6)
    f1 = precision_recall_fscore_support(y, pred, average="binary")[2]
    assert f1 == pytest.approx(meta["test"]["f1_spam"], abs=1e-6)
    assert (
        meta["test"]["accuracy"] > 0.975 and meta["command"] == "python -m lessons_lib.classifier"
    )
