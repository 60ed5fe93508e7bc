"""The encoder: its NumPy reference, padding, bidirectionality, parameters and bad input."""

import numpy as np
import pytest

from lessons_lib import GPT, Encoder, encoder_forward, encoder_param_count
from lessons_lib._backend import keras


def _encoder(rng, norm_first=True, positional="learned", pad_id=0, **kw):
    enc = Encoder(
        40, 12, 16, 2, 2, norm_first=norm_first, positional=positional, pad_id=pad_id, **kw
    )
    enc(np.zeros((1, 3), dtype="int32"))
    for w in enc.weights:  # random γ, β and biases too, so that nothing hides behind a 1 or a 0
        base = 1.0 if w.path.endswith("gamma") else 0.0
        w.assign(base + rng.normal(size=w.shape) * 0.3)
    return enc


IDS = np.array([[5, 6, 7, 0, 0], [3, 4, 9, 8, 1], [2, 0, 0, 0, 0]], dtype="int32")


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_encoder_matches_its_numpy_reference_with_padding(norm_first, positional, rng):
    enc = _encoder(rng, norm_first, positional)
    h, w = enc(IDS, return_attention=True)
    ref = encoder_forward(enc, IDS)
    np.testing.assert_allclose(h.numpy(), ref["hidden"], atol=2e-5)
    np.testing.assert_allclose(w.numpy(), ref["weights"], atol=1e-5)
    assert w.shape == (3, 2, 2, 5, 5)
    # padded keys get weight 0 from every query, in every layer and head
    pad = IDS == 0
    assert np.all(w.numpy()[np.broadcast_to(pad[:, None, None, None, :], w.shape)] == 0)


def test_batch_equal_to_t_is_not_ambiguous(rng):
    """Batch 3 × T 3: the mask from pad_id is a [batch, T] padding mask, never a [T_q, T_k] one."""
    enc = _encoder(rng)
    ids = IDS[:, :3]
    np.testing.assert_allclose(enc(ids).numpy(), encoder_forward(enc, ids)["hidden"], atol=2e-5)


@pytest.mark.parametrize("norm_first", [True, False])
def test_padding_invariance(norm_first, rng):
    """Appending more padding leaves every real position's output unchanged (to 1e-6)."""
    enc = _encoder(rng, norm_first)
    short = enc(IDS).numpy()
    longer = enc(np.pad(IDS, ((0, 0), (0, 6)))).numpy()
    real = IDS != 0
    np.testing.assert_allclose(longer[:, :5][real], short[real], atol=1e-6)


def test_without_the_mask_padding_changes_the_outputs(rng):
    """The control: with pad_id=None padding is attended to, so more padding moves the outputs."""
    enc = _encoder(rng, pad_id=None)
    short = enc(IDS).numpy()
    longer = enc(np.pad(IDS, ((0, 0), (0, 6)))).numpy()
    real = IDS != 0
    assert np.abs(longer[:, :5][real] - short[real]).max() > 1e-2


def test_explicit_padding_mask_equals_the_pad_id_mask(rng):
    enc = _encoder(rng)
    explicit = enc(IDS, padding_mask=IDS != 0).numpy()
    np.testing.assert_allclose(explicit, enc(IDS).numpy(), atol=0)
    np.testing.assert_array_equal(enc.padding_mask_for(IDS).numpy(), IDS != 0)
    assert Encoder(40, 12, 16, 2, 1).padding_mask_for(IDS) is None


def test_fully_padded_row_is_finite(rng):
    enc = _encoder(rng)
    ids = np.array([[0, 0, 0], [4, 5, 0]], dtype="int32")
    h, w = enc(ids, return_attention=True)
    assert np.isfinite(h.numpy()).all() and np.isfinite(w.numpy()).all()


def test_the_encoder_sees_both_directions_and_the_gpt_does_not(rng):
    """Changing the last token moves the first position's output in the encoder (no causal mask)."""
    enc = _encoder(rng, pad_id=None)
    a = np.array([[5, 6, 7, 8]], dtype="int32")
    b = a.copy()
    b[0, -1] = 9
    assert np.abs(enc(a).numpy()[0, 0] - enc(b).numpy()[0, 0]).max() > 1e-3
    gpt = GPT(40, 12, 16, 2, 1)
    np.testing.assert_allclose(gpt(a).numpy()[0, 0], gpt(b).numpy()[0, 0], atol=1e-6)


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
def test_param_count(norm_first, use_bias, positional):
    enc = Encoder(
        50, 10, 16, 4, 3, d_ff=24, norm_first=norm_first, use_bias=use_bias, positional=positional
    )
    enc(np.zeros((1, 2), dtype="int32"))
    expected = encoder_param_count(
        50, 10, 16, 3, d_ff=24, use_bias=use_bias, positional=positional, norm_first=norm_first
    )
    assert enc.count_params() == expected


def test_config_round_trip_and_weights_file(rng, tmp_path):
    enc = _encoder(rng, dropout=0.1)
    clone = Encoder.from_config(enc.get_config())
    assert clone.get_config() == enc.get_config()
    path = tmp_path / "enc.weights.h5"
    enc.save_weights(path)
    clone(IDS)
    clone.load_weights(path)
    np.testing.assert_allclose(clone(IDS).numpy(), enc(IDS).numpy(), atol=0)


def test_dropout_only_in_training(rng):
    enc = _encoder(rng, dropout=0.5)
    np.testing.assert_allclose(enc(IDS).numpy(), enc(IDS, training=False).numpy(), atol=0)
    keras.utils.set_random_seed(1)
    assert np.abs(enc(IDS, training=True).numpy() - enc(IDS).numpy()).max() > 1e-3


def test_bad_input(rng):
    enc = _encoder(rng)
    with pytest.raises(ValueError, match=r"token ids \[batch, T\]"):
        enc(np.zeros((2, 3, 4), dtype="int32"))
    with pytest.raises(ValueError, match="empty batch"):
        enc(np.zeros((0, 3), dtype="int32"))
    with pytest.raises(ValueError, match=r"in \[0, 40\)"):
        enc(np.array([[1, 40]], dtype="int32"))
    with pytest.raises(ValueError, match="exceeds max_len=12"):
        enc(np.zeros((1, 13), dtype="int32"))
    with pytest.raises(TypeError, match="integer token ids"):
        enc(np.zeros((1, 3), dtype="float32"))
    with pytest.raises(ValueError, match="divisible by num_heads"):
        Encoder(40, 12, 16, 3, 1)
    with pytest.raises(ValueError, match="pad_id"):
        Encoder(40, 12, 16, 2, 1, pad_id=40)
    with pytest.raises(ValueError, match="pad_id"):
        Encoder(40, 12, 16, 2, 1, pad_id=True)
    with pytest.raises(TypeError, match="lessons_lib.Encoder"):
        encoder_forward("not a model", IDS)
    with pytest.raises(ValueError, match="not built"):
        encoder_forward(Encoder(40, 12, 16, 2, 1), IDS)
    with pytest.raises(ValueError, match=r"in \[0, 40\)"):
        encoder_forward(enc, np.array([[41]]))
    with pytest.raises(ValueError, match="positional"):
        encoder_param_count(10, 5, 8, 1, positional="rotary")
