"""The course's running example, "the thread": one sentence through a tiny Transformer, by hand.

Lessons 02–08 follow the same numbers: token ids → embeddings (lesson 02 §1) → + positions (lesson
03 §6) → Q, K, V → scores → weights (head 0 in lesson 04 §5) → per-head outputs → concat → W_O
(lesson 05 §3) → residual → LayerNorm (lesson 07 §3) → FFN (lesson 06 §2) → residual → LayerNorm
(lesson 07 §3) → final LayerNorm → logits over the vocabulary → probabilities (lesson 08 §2). Every
weight is drawn once from a seeded generator and rounded to one decimal, so a learner can redo any
step on paper. `forward` computes every intermediate with the NumPy references of
``lessons_lib`` (`lessons_lib.block.transformer_block` for the block); `load_into` loads
the same weights into the Keras layers and `build_gpt` into a whole
`GPT`, which must agree (lesson 08 §2).

The thread's block is **post-norm** and uses ReLU, like the original Transformer (Vaswani et al.,
2017) that the source article describes; its attention has no biases and a causal mask (``True`` =
may attend). Each lesson picks up where the previous one stopped by reading ``forward()[name]``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from lessons_lib._validate import assign_weights
from lessons_lib.attention import (
    MultiHeadAttention,
    _attention_slots,
    causal_mask,
    merge_heads,
    softmax,
)
from lessons_lib.attention import split_heads as _split_heads
from lessons_lib.block import TransformerBlock, load_block_weights, transformer_block
from lessons_lib.feedforward import FeedForward, _ffn_slots
from lessons_lib.gpt import GPT
from lessons_lib.normalization import layer_norm
from lessons_lib.positional import sinusoidal_positional_encoding

__all__ = [
    "SENTENCE",
    "VOCAB",
    "build_gpt",
    "forward",
    "load_into",
    "merge_heads",
    "split_heads",
    "tokenize",
    "weights",
]

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
    """Split on spaces and look each word up in `VOCAB` (a word-level tokenizer, enough here).

    The thread's ids, used from lesson 02 §1 on (lesson 01 builds real tokenizers).
    """
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
    """The thread's fixed weights (copies, so a lesson may modify them freely).

    ``E`` (lesson 02 §1; also the tied output matrix, lesson 08 §2), ``W_Q W_K W_V`` (lesson 04 §5),
    ``W_O`` (lesson 05 §3), ``W_1 b_1 W_2 b_2`` (lesson 06 §2), ``gamma_1 beta_1 gamma_2 beta_2``
    (lesson 07 §3) and ``gamma_f beta_f`` (lesson 08 §2); the names
    `lessons_lib.block.transformer_block` takes.
    """
    return {k: w.copy() for k, w in _weights().items()}


def split_heads(x: np.ndarray, num_heads: int = NUM_HEADS) -> np.ndarray:
    """``[T, d_model] → [heads, T, d_k]``, with the thread's 2 heads unless told otherwise.

    `lessons_lib.split_heads` with a default: head i takes columns i·d_k … (i+1)·d_k − 1.
    Derived in lesson 05 §2 and §3.1.
    """
    return _split_heads(x, num_heads)


def forward(sentence: str = SENTENCE) -> dict[str, np.ndarray]:
    """Every intermediate value of the thread, in order, as NumPy arrays (float64).

    The keys, and the lesson that derives each: ``ids one_hot embeddings`` (lesson 02 §1),
    ``positions x`` (lesson 03 §2, §6), ``Q K V`` (lesson 04 §5), ``Q_heads K_heads V_heads scores
    mask head_outputs weights concat attn_out`` (lesson 05 §3; head 0 in lesson 04 §5), ``residual_1
    h1`` (lesson 07 §3), ``ffn_hidden ffn_out`` (lesson 06 §2), ``residual_2 block_out`` (lesson 07
    §3), ``final logits probs`` (lesson 08 §2). The block is
    `lessons_lib.block.transformer_block` (post-norm, ReLU, causal mask ``True`` = may
    attend), on the weights of `weights`.
    """
    w = _weights()
    s: dict[str, np.ndarray] = {}
    s["ids"] = ids = np.array(tokenize(sentence))
    t = len(ids)
    s["one_hot"] = np.eye(len(VOCAB))[ids]
    s["embeddings"] = w["E"][ids]  # lesson 02
    s["positions"] = sinusoidal_positional_encoding(t, D_MODEL)  # lesson 03
    s["x"] = x = s["embeddings"] + s["positions"]
    mask = causal_mask(t)
    block = transformer_block(
        x, w, NUM_HEADS, norm_first=False, activation="relu", mask=mask, epsilon=EPS
    )
    for name in ("Q", "K", "V", "Q_heads", "K_heads", "V_heads", "scores"):  # lesson 04, 05
        s[name] = block[name]
    s["mask"] = mask
    for name in ("head_outputs", "weights", "concat", "attn_out"):  # lesson 05
        s[name] = block[name]
    for name in ("residual_1", "h1", "ffn_hidden", "ffn_out", "residual_2", "block_out"):  # 06, 07
        s[name] = block[name]
    s["final"] = layer_norm(s["block_out"], w["gamma_f"], w["beta_f"], EPS)  # lesson 08
    s["logits"] = s["final"] @ w["E"].T
    s["probs"] = softmax(s["logits"], axis=-1)
    return s


def _check_size(layer: Any, what: str, **expected: Any) -> None:
    wrong = {k: getattr(layer, k) for k, v in expected.items() if getattr(layer, k) != v}
    if wrong:
        got = ", ".join(f"{k}={v!r}" for k, v in wrong.items())
        want = ", ".join(f"{k}={expected[k]!r}" for k in wrong)
        raise ValueError(f"the thread's weights need a {what} with {want}; this one has {got}")


def load_into(obj: Any) -> Any:
    """Load the thread's weights (`weights`) into a ``lessons_lib`` layer or model; return it.

    Accepts a `MultiHeadAttention` (``d_model=4, num_heads=2``; its
    biases are set to 0: the thread has none), a `FeedForward`
    (``d_model=4, d_ff=16``), a `TransformerBlock` (``4, 2, 16``,
    self-attention) or a `GPT` (``vocab_size=6, d_model=4, num_heads=2,
    d_ff=16, num_layers=1``, sinusoidal positions, tied embeddings); anything else is refused. An
    unbuilt layer is built first. The thread's numbers come out with ReLU and post-norm
    (``activation="relu", norm_first=False``), as in `build_gpt`; other settings load the same
    weights into a different computation (lesson 07 §5 loads them into a pre-norm block).
    """
    w = _weights()
    if isinstance(obj, GPT):
        _check_size(
            obj,
            "GPT",
            vocab_size=len(VOCAB),
            d_model=D_MODEL,
            num_heads=NUM_HEADS,
            d_ff=D_FF,
            num_layers=1,
            positional="sinusoidal",
            tie_embeddings=True,
        )
        if not obj.built:
            obj.build((1, None))
        load_block_weights(obj.blocks[0], w)
        obj.embed.token_embedding.embeddings.assign(w["E"])
        obj.ln_f.gamma.assign(w["gamma_f"])
        if obj.ln_f.beta is not None:
            obj.ln_f.beta.assign(w["beta_f"])
        return obj
    if isinstance(obj, TransformerBlock):
        _check_size(obj, "TransformerBlock", d_model=D_MODEL, num_heads=NUM_HEADS, d_ff=D_FF)
        return load_block_weights(obj, w)
    if isinstance(obj, MultiHeadAttention):
        _check_size(obj, "MultiHeadAttention", d_model=D_MODEL, num_heads=NUM_HEADS)
        if not obj.built:
            obj.build((None, None, D_MODEL))
        slots = _attention_slots(obj)
        assign_weights(slots, {n: w[n] for n in slots if n in w}, "the MultiHeadAttention")
        return obj
    if isinstance(obj, FeedForward):
        _check_size(obj, "FeedForward", d_model=D_MODEL, d_ff=D_FF)
        if not obj.built:
            obj.build((None, None, D_MODEL))
        slots = _ffn_slots(obj)
        assign_weights(slots, {n: w[n] for n in slots}, "the FeedForward")
        return obj
    raise TypeError(
        "thread.load_into expects a lessons_lib MultiHeadAttention, FeedForward, TransformerBlock "
        f"or GPT, got {type(obj).__module__}.{type(obj).__qualname__}"
    )


def build_gpt() -> GPT:
    """The thread as a Keras `GPT` with the thread's weights loaded.

    One post-norm block, ReLU, sinusoidal positions, tied embeddings, ``max_len=8``;
    ``model(ids[None])`` gives the thread's logits, ``forward()["logits"]``. Lesson 08 §2 checks it
    against `forward`.
    """
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
    return load_into(model)
