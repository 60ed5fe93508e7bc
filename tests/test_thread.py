"""The thread (lessons 02-08): its NumPy forward pass, its weights, the loader into Keras layers."""

from pathlib import Path

import keras
import numpy as np
import pytest

from lessons_lib import (
    GPT,
    FeedForward,
    MultiHeadAttention,
    TransformerBlock,
    block_weights,
    causal_mask,
    merge_heads,
    split_heads,
    thread,
)

# thread.forward() as computed by its first implementation (before the references of issue 9
# replaced its hand-written attention and block), saved with np.savez.
REFERENCE = Path(__file__).parent / "data" / "thread_forward_reference.npz"


def test_forward_returns_the_same_intermediates_and_values_as_before():
    s = thread.forward()
    ref = np.load(REFERENCE)
    assert list(s) == list(ref.files)  # the same names, in the same order
    for name in ref.files:
        assert s[name].dtype == ref[name].dtype and s[name].shape == ref[name].shape, name
        np.testing.assert_allclose(s[name], ref[name], rtol=0, atol=1e-12, err_msg=name)


def test_thread_numpy_matches_keras_gpt():
    s = thread.forward()
    assert list(s["ids"]) == [0, 1, 2, 3, 0, 1]
    np.testing.assert_allclose(s["one_hot"] @ thread.weights()["E"], s["embeddings"])
    np.testing.assert_allclose(s["probs"].sum(-1), 1.0)
    logits = thread.build_gpt()(s["ids"][None]).numpy()[0]
    np.testing.assert_allclose(logits, s["logits"], atol=1e-5)
    w = thread.weights()
    assert all(
        np.allclose(v, np.round(v, 1)) for v in w.values()
    )  # every weight has one decimal: hand-friendly
    with pytest.raises(ValueError, match="not in the thread's vocabulary"):
        thread.tokenize("to be or not to sing")


def test_forward_on_another_sentence_and_its_pieces():
    s = thread.forward("to be or not")
    assert s["x"].shape == (4, 4) and s["weights"].shape == (2, 4, 4)
    np.testing.assert_array_equal(s["mask"], causal_mask(4))
    np.testing.assert_array_equal(s["Q_heads"], split_heads(s["Q"], 2))
    np.testing.assert_array_equal(s["concat"], merge_heads(s["head_outputs"]))
    np.testing.assert_allclose(
        s["ffn_hidden"], np.maximum(s["h1"] @ thread.weights()["W_1"] + thread.weights()["b_1"], 0)
    )


def test_split_heads_keeps_the_threads_default_and_merge_heads_is_the_library_one():
    q = thread.forward()["Q"]
    np.testing.assert_array_equal(thread.split_heads(q), split_heads(q, thread.NUM_HEADS))
    np.testing.assert_array_equal(thread.split_heads(q, 4), split_heads(q, 4))
    assert thread.merge_heads is merge_heads


def test_load_into_each_layer_reproduces_the_thread():
    s, w = thread.forward(), thread.weights()
    x = s["x"][None].astype("float32")
    mha = thread.load_into(MultiHeadAttention(4, 2))  # unbuilt: load_into builds it
    out, weights = mha(x, use_causal_mask=True, return_attention=True)
    np.testing.assert_allclose(out[0], s["attn_out"], atol=1e-5)
    np.testing.assert_allclose(weights[0], s["weights"], atol=1e-6)
    assert not np.any(mha.wq.bias.numpy())  # the thread's attention has no biases
    ffn = thread.load_into(FeedForward(4, 16, activation="relu"))
    np.testing.assert_allclose(ffn(s["h1"][None].astype("float32"))[0], s["ffn_out"], atol=1e-5)
    block = thread.load_into(TransformerBlock(4, 2, 16, norm_first=False, activation="relu"))
    np.testing.assert_allclose(block(x, use_causal_mask=True)[0], s["block_out"], atol=1e-5)
    bw = block_weights(block)
    for name in ("W_Q", "W_O", "W_1", "b_2", "gamma_1", "beta_2"):
        np.testing.assert_allclose(bw[name], w[name], atol=1e-7)
    gpt = GPT(6, 8, 4, 2, 1, d_ff=16, norm_first=False, activation="relu", positional="sinusoidal")
    assert thread.load_into(gpt) is gpt
    np.testing.assert_allclose(gpt(s["ids"][None])[0], s["logits"], atol=1e-5)


def test_load_into_refuses_other_objects_and_sizes():
    with pytest.raises(TypeError, match="expects a lessons_lib MultiHeadAttention, FeedForward"):
        thread.load_into(np.zeros((4, 4)))
    with pytest.raises(TypeError, match="got keras.*MultiHeadAttention"):
        thread.load_into(keras.layers.MultiHeadAttention(2, key_dim=2))
    with pytest.raises(
        ValueError, match=r"d_model=4, num_heads=2; this one has d_model=8, num_heads=4"
    ):
        thread.load_into(MultiHeadAttention(8, 4))
    with pytest.raises(ValueError, match="d_ff=16; this one has d_ff=8"):
        thread.load_into(FeedForward(4, 8))
    with pytest.raises(ValueError, match="num_heads=2; this one has num_heads=1"):
        thread.load_into(TransformerBlock(4, 1, 16))
    with pytest.raises(
        ValueError, match="positional='sinusoidal'; this one has positional='learned'"
    ):
        thread.load_into(GPT(6, 8, 4, 2, 1, d_ff=16))
    with pytest.raises(ValueError, match="num_layers=1; this one has num_layers=2"):
        thread.load_into(GPT(6, 8, 4, 2, 2, d_ff=16, positional="sinusoidal"))
    with pytest.raises(ValueError, match="use_bias=False"):
        thread.load_into(TransformerBlock(4, 2, 16, use_bias=False))  # nowhere to put b_1, b_2, β
