import numpy as np
import pytest

from lessons_lib import GPT, gpt_param_count, layer_norm


def test_gpt_shapes_params_and_causality(rng):
    model = GPT(vocab_size=11, max_len=8, d_model=16, num_heads=4, num_layers=2)
    ids = rng.integers(0, 11, size=(2, 6))
    logits, w = model(ids, return_attention=True)
    assert logits.shape == (2, 6, 11) and w.shape == (2, 2, 4, 6, 6)
    assert model.count_params() == gpt_param_count(11, 8, 16, 2)
    changed = ids.copy()
    changed[:, -1] = (
        changed[:, -1] + 1
    ) % 11  # changing the last token cannot change earlier predictions
    np.testing.assert_allclose(model(changed)[:, :-1], logits[:, :-1], atol=1e-6)
    untied = GPT(11, 8, 16, 4, 1, use_bias=False, tie_embeddings=False)
    untied(ids)
    assert untied.count_params() == gpt_param_count(
        11, 8, 16, 1, use_bias=False, tie_embeddings=False
    )
    clone = GPT.from_config(model.get_config())
    assert clone.get_config() == model.get_config()


def test_gpt_logits_is_the_tied_output_layer(rng):
    """GPT.logits, the step lesson 08 shows: LN_f(x) Eᵀ (tied) or the head (untied)."""
    model = GPT(11, 8, 16, 4, 1)
    ids = rng.integers(0, 11, size=(1, 5))
    model(ids)
    x = rng.normal(size=(1, 5, 16)).astype("float32")
    e = model.embed.embeddings.numpy()
    ln = layer_norm(x.astype(np.float64), model.ln_f.gamma.numpy(), model.ln_f.beta.numpy())
    np.testing.assert_allclose(model.logits(x), ln @ e.T, atol=1e-5)
    untied = GPT(11, 8, 16, 4, 1, tie_embeddings=False)
    untied(ids)
    np.testing.assert_allclose(untied.logits(x), untied.head(untied.ln_f(x)), atol=0)


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        ({"positional": "sinusodial"}, "positional must be one of"),
        ({"vocab_size": 0}, "vocab_size must be a positive integer"),
        ({"max_len": -4}, "max_len must be a positive integer"),
    ],
)
def test_gpt_param_count_bad_input(kwargs, msg):
    args = {"vocab_size": 10, "max_len": 8, "d_model": 4, "num_layers": 1, **kwargs}
    with pytest.raises(ValueError, match=msg):
        gpt_param_count(**args)


def _pad(lengths, t):
    return np.arange(t)[None, :] < np.asarray(lengths)[:, None]


def test_gpt_padding_mask_batch_equal_to_t_invariance_and_fully_padded_row(rng):
    model = GPT(vocab_size=11, max_len=10, d_model=16, num_heads=4, num_layers=2)
    ids = rng.integers(1, 11, size=(5, 5))  # batch == T
    lengths = [5, 3, 1, 4, 0]  # the last row is only padding
    pad = _pad(lengths, 5)
    ids = np.where(pad, ids, 0)
    logits, w = model(ids, padding_mask=pad, return_attention=True)
    assert np.all(np.isfinite(np.asarray(logits)))
    assert np.all(np.asarray(w)[1, :, :, :, 3:] == 0.0)  # padded keys get no weight
    # causal ∧ padding: with right padding, the real positions are those of the causal model alone
    plain = np.asarray(model(ids))
    np.testing.assert_allclose(np.asarray(logits)[pad], plain[pad], atol=1e-6)
    # appending more padding changes no real position
    longer = np.concatenate([ids, np.zeros((5, 4), ids.dtype)], axis=1)
    logits2 = np.asarray(model(longer, padding_mask=_pad(lengths, 9)))[:, :5]
    np.testing.assert_allclose(logits2[pad], np.asarray(logits)[pad], atol=1e-6)
    with pytest.raises(ValueError, match=r"padding_mask must have shape \[batch, T_k\] = \[5, 5\]"):
        model(ids, padding_mask=pad[:, :4])
