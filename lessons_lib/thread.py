"""The course's running example ("the thread"): one short sentence pushed through a tiny Transformer by hand.

Lessons 02–08 follow the same numbers: token ids → embeddings → + positions → Q, K, V → scores → weights →
per-head outputs → concat → W_O → residual → LayerNorm → FFN → residual → LayerNorm → logits over the vocabulary.
Every weight is drawn once from a seeded generator and rounded to one decimal, so a learner can redo any step on
paper. :func:`forward` computes every intermediate with the NumPy references of ``lessons_lib``;
:func:`build_gpt` loads the same weights into the Keras :class:`~lessons_lib.gpt.GPT`, which must agree.

The thread's block is **post-norm** and uses ReLU, like the original Transformer (Vaswani et al., 2017) that the
source article describes; each lesson picks up where the previous one stopped by reading ``forward()[name]``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from lessons_lib.attention import causal_mask, scaled_dot_product_attention, softmax
from lessons_lib.feedforward import feed_forward
from lessons_lib.normalization import layer_norm
from lessons_lib.positional import sinusoidal_positional_encoding

SENTENCE = "to be or not to be"
VOCAB = ("to", "be", "or", "not", "that", "is")
D_MODEL = 4
NUM_HEADS = 2
D_K = D_MODEL // NUM_HEADS
D_FF = 4 * D_MODEL
MAX_LEN = 8
EPS = 1e-5
SEED = 2017


def tokenize(sentence: str = SENTENCE) -> list[int]:
    """Split on spaces and look each word up in :data:`VOCAB` (a word-level tokenizer, enough for the thread)."""
    ids = []
    for word in sentence.split():
        if word not in VOCAB:
            raise ValueError(f"word {word!r} is not in the thread's vocabulary {VOCAB}")
        ids.append(VOCAB.index(word))
    return ids


@lru_cache(maxsize=1)
def _weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)

    def draw(shape: tuple[int, ...], std: float) -> np.ndarray:
        return np.round(rng.normal(0.0, std, size=shape), 1)

    d, f, v = D_MODEL, D_FF, len(VOCAB)
    return {
        "E": draw((v, d), 1.0),  # token embedding table, also the (tied) output matrix
        "W_Q": draw((d, d), 0.7),
        "W_K": draw((d, d), 0.7),
        "W_V": draw((d, d), 0.7),
        "W_O": draw((d, d), 0.7),
        "W_1": draw((d, f), 0.5),
        "b_1": draw((f,), 0.2),
        "W_2": draw((f, d), 0.3),
        "b_2": draw((d,), 0.2),
        "gamma_1": np.ones(d),
        "beta_1": np.zeros(d),
        "gamma_2": np.ones(d),
        "beta_2": np.zeros(d),
        "gamma_f": np.ones(d),
        "beta_f": np.zeros(d),
    }


def weights() -> dict[str, np.ndarray]:
    """The thread's fixed weights (copies, so a lesson may modify them freely)."""
    return {k: w.copy() for k, w in _weights().items()}


def split_heads(x: np.ndarray, num_heads: int = NUM_HEADS) -> np.ndarray:
    """``[T, d_model] -> [heads, T, d_k]``: head ``i`` takes columns ``i*d_k .. (i+1)*d_k - 1``."""
    t, d = x.shape
    return x.reshape(t, num_heads, d // num_heads).transpose(1, 0, 2)


def merge_heads(x: np.ndarray) -> np.ndarray:
    """``[heads, T, d_k] -> [T, heads*d_k]``: concatenate the heads side by side."""
    h, t, dk = x.shape
    return x.transpose(1, 0, 2).reshape(t, h * dk)


def forward(sentence: str = SENTENCE) -> dict[str, np.ndarray]:
    """Every intermediate value of the thread, in order, as NumPy arrays (float64)."""
    w = _weights()
    s: dict[str, np.ndarray] = {}
    s["ids"] = ids = np.array(tokenize(sentence))
    t = len(ids)
    s["one_hot"] = np.eye(len(VOCAB))[ids]
    s["embeddings"] = w["E"][ids]  # lesson 02
    s["positions"] = sinusoidal_positional_encoding(t, D_MODEL)  # lesson 03
    s["x"] = x = s["embeddings"] + s["positions"]
    s["Q"], s["K"], s["V"] = x @ w["W_Q"], x @ w["W_K"], x @ w["W_V"]  # lesson 04
    s["Q_heads"], s["K_heads"], s["V_heads"] = (split_heads(s[n]) for n in ("Q", "K", "V"))
    s["scores"] = s["Q_heads"] @ s["K_heads"].transpose(0, 2, 1) / np.sqrt(D_K)
    s["mask"] = causal_mask(t)
    s["head_outputs"], s["weights"] = scaled_dot_product_attention(
        s["Q_heads"], s["K_heads"], s["V_heads"], mask=s["mask"]
    )
    s["concat"] = merge_heads(s["head_outputs"])  # lesson 05
    s["attn_out"] = s["concat"] @ w["W_O"]
    s["residual_1"] = x + s["attn_out"]  # lesson 07 (post-norm)
    s["h1"] = layer_norm(s["residual_1"], w["gamma_1"], w["beta_1"], EPS)
    s["ffn_hidden"] = np.maximum(s["h1"] @ w["W_1"] + w["b_1"], 0.0)  # lesson 06
    s["ffn_out"] = feed_forward(s["h1"], w["W_1"], w["b_1"], w["W_2"], w["b_2"], activation="relu")
    s["residual_2"] = s["h1"] + s["ffn_out"]
    s["block_out"] = layer_norm(s["residual_2"], w["gamma_2"], w["beta_2"], EPS)
    s["final"] = layer_norm(s["block_out"], w["gamma_f"], w["beta_f"], EPS)  # lesson 08
    s["logits"] = s["final"] @ w["E"].T
    s["probs"] = softmax(s["logits"], axis=-1)
    return s


def build_gpt():
    """The thread as a Keras :class:`~lessons_lib.gpt.GPT` (1 post-norm block, ReLU, sinusoidal positions,
    tied embeddings) with the thread's weights loaded; ``model(ids[None])`` gives the thread's logits."""
    from lessons_lib.gpt import GPT

    w = _weights()
    model = GPT(
        len(VOCAB),
        MAX_LEN,
        D_MODEL,
        NUM_HEADS,
        num_layers=1,
        d_ff=D_FF,
        norm_first=False,
        activation="relu",
        positional="sinusoidal",
        tie_embeddings=True,
        name="thread_gpt",
    )
    model.build((1, None))
    zeros = np.zeros(D_MODEL)
    block = model.blocks[0]
    model.embed.token_embedding.embeddings.assign(w["E"])
    for dense, name in (
        (block.attn.wq, "W_Q"),
        (block.attn.wk, "W_K"),
        (block.attn.wv, "W_V"),
        (block.attn.wo, "W_O"),
    ):
        dense.kernel.assign(w[name])
        dense.bias.assign(zeros)
    block.ffn.w1.kernel.assign(w["W_1"])
    block.ffn.w1.bias.assign(w["b_1"])
    block.ffn.w2.kernel.assign(w["W_2"])
    block.ffn.w2.bias.assign(w["b_2"])
    for ln, suffix in ((block.ln1, "1"), (block.ln2, "2"), (model.ln_f, "f")):
        ln.gamma.assign(w[f"gamma_{suffix}"])
        ln.beta.assign(w[f"beta_{suffix}"])
    return model
