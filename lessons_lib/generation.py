r"""Text generation: decoding strategies and a KV cache.

At each step the model gives logits :math:`z` for the next token. The strategies differ in which part of
:math:`p = \mathrm{softmax}(z / \tau)` they keep before drawing:

* **greedy**: :math:`\arg\max_i z_i` (deterministic, often repetitive);
* **temperature** :math:`\tau`: divide the logits by :math:`\tau` (``< 1`` sharpens, ``> 1`` flattens);
* **top-k** (Fan et al., 2018): keep the ``k`` largest logits, renormalize;
* **top-p / nucleus** (Holtzman et al., 2020): keep the smallest set of most likely tokens whose probability
  reaches ``p``, renormalize.

A **KV cache** stores every layer's keys and values for the tokens seen so far, so each new token costs one query
row instead of a forward pass over the whole window. Within ``max_len`` it gives exactly the logits of full
recomputation. The model was trained on windows of ``max_len`` tokens with absolute positions, so a longer context
keeps the **last** ``max_len`` tokens. Without a cache that is exact at every step. With the cache, when it fills up
we keep the last ``max_len // 2`` tokens, re-fill the cache from them in one forward pass, and continue, so the
context then varies between ``max_len // 2`` and ``max_len`` tokens (re-filling at every step would be exact but
would cost as much as having no cache).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import tensorflow as tf

from lessons_lib._validate import describe


def _check_sampling(vocab_size: int, temperature: float, top_k: int | None, top_p: float | None) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0 (use greedy=True for argmax), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer))
                              or not 0 < top_k <= vocab_size):
        raise ValueError(f"top_k must be an integer in [1, vocab_size={vocab_size}], got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, (int, float)) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """Set every logit below the ``k``-th largest (per row) to ``-inf``. Ties with the ``k``-th are kept."""
    logits = np.asarray(logits, dtype=np.float64)
    kth = np.sort(logits, axis=-1)[..., -k][..., None]
    return np.where(logits < kth, -np.inf, logits)


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    """Keep the smallest set of most probable tokens whose total probability is ``>= p`` (per row)."""
    logits = np.asarray(logits, dtype=np.float64)
    order = np.argsort(-logits, axis=-1, kind="stable")
    sorted_logits = np.take_along_axis(logits, order, axis=-1)
    probs = np.exp(sorted_logits - sorted_logits[..., :1])
    probs /= probs.sum(axis=-1, keepdims=True)
    before = np.cumsum(probs, axis=-1) - probs  # probability mass strictly before each token
    drop_sorted = before >= p                   # the first token is always kept (before = 0 < p)
    drop = np.zeros_like(drop_sorted)
    np.put_along_axis(drop, order, drop_sorted, axis=-1)
    return np.where(drop, -np.inf, logits)


def next_token_distribution(logits: Any, temperature: float = 1.0, top_k: int | None = None,
                            top_p: float | None = None) -> np.ndarray:
    """The distribution each strategy draws from: temperature, then top-k, then top-p, then softmax."""
    z = np.asarray(logits, dtype=np.float64)
    _check_sampling(z.shape[-1], temperature, top_k, top_p)
    z = z / temperature
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sample_next(logits: Any, rng: np.random.Generator, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, greedy: bool = False) -> np.ndarray:
    """Draw one token id per row of ``logits [B, vocab]`` (argmax when ``greedy``)."""
    z = np.asarray(logits, dtype=np.float64)
    if greedy:
        return z.argmax(axis=-1)
    p = next_token_distribution(z, temperature, top_k, top_p)
    return np.array([rng.choice(p.shape[-1], p=row) for row in p])


class Generator:
    """Compiled generation for a :class:`~lessons_lib.gpt.GPT`: without a cache (a full forward pass over the
    window at every step) or with a KV cache. Both compile once, with fixed shapes ``[batch, max_len]``."""

    def __init__(self, model, jit_compile: bool = True):
        self.model = model
        self.max_len = model.max_len
        self._window = tf.function(lambda ids, last: tf.gather(model(ids), last, axis=1, batch_dims=1),
                                   jit_compile=jit_compile)
        self._prefill = tf.function(lambda ids: model.prefill(ids), jit_compile=jit_compile)
        self._decode = tf.function(lambda tok, cache, pos: model.decode_step(tok, cache, pos),
                                   jit_compile=jit_compile)

    def _padded(self, rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        ids = np.zeros((len(rows), self.max_len), dtype=np.int32)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = r
        return ids, np.array([len(r) - 1 for r in rows], dtype=np.int32)

    def generate(self, prompt_ids: Sequence[int] | np.ndarray, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, greedy: bool = False, seed: int = 0,
                 use_cache: bool = True, return_logits: bool = False):
        """Continue ``prompt_ids`` (``[T]`` or ``[batch, T]``, same length per row) by ``max_new_tokens`` tokens.

        Returns the new ids ``[batch, max_new_tokens]`` (and the logits used at each step if ``return_logits``).
        """
        prompt = np.asarray(prompt_ids)
        if prompt.ndim == 1:
            prompt = prompt[None]
        if prompt.ndim != 2 or prompt.shape[1] == 0:
            raise ValueError(f"prompt must be a non-empty sequence of token ids, got {describe(prompt)}")
        if not np.issubdtype(prompt.dtype, np.integer):
            raise TypeError(f"prompt must hold integer token ids, got {describe(prompt)}")
        vocab = self.model.vocab_size
        if prompt.min() < 0 or prompt.max() >= vocab:
            raise ValueError(f"prompt ids must be in [0, {vocab}), got min {prompt.min()} and max {prompt.max()}")
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        if not greedy:
            _check_sampling(vocab, temperature, top_k, top_p)
        rng = np.random.default_rng(seed)
        seqs = [list(map(int, row)) for row in prompt]
        new, used_logits = [], []
        cache, cached = None, 0  # `cached`: how many of the latest tokens have their keys/values in the cache
        for _ in range(max_new_tokens):
            if not use_cache:
                ids, last = self._padded([s[-self.max_len:] for s in seqs])
                logits = self._window(ids, last).numpy()
            elif cache is None or cached == self.max_len:
                keep = min(len(seqs[0]), self.max_len) if cache is None else self.max_len // 2
                ids, last = self._padded([s[-keep:] for s in seqs])
                all_logits, cache = self._prefill(ids)
                logits = tf.gather(all_logits, last, axis=1, batch_dims=1).numpy()
                cached = keep
            else:  # the newest token is not in the cache yet: it goes in at position `cached`
                tok = np.array([s[-1] for s in seqs], dtype=np.int32)
                logits, cache = self._decode(tok, cache, tf.constant(cached, tf.int32))
                logits = logits.numpy()
                cached += 1
            nxt = sample_next(logits, rng, temperature, top_k, top_p, greedy)
            for s, t in zip(seqs, nxt):
                s.append(int(t))
            new.append(nxt)
            used_logits.append(logits)
        out = np.stack(new, axis=1)
        return (out, np.stack(used_logits, axis=1)) if return_logits else out


def generate_text(model, tokenizer, prompt: str, max_new_tokens: int = 200, **kwargs) -> str:
    """Encode ``prompt`` with ``tokenizer``, continue it with :meth:`Generator.generate`, decode the new tokens."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    if not prompt:
        raise ValueError("prompt must not be empty: give at least one character to start from")
    ids = tokenizer.encode(prompt)
    generator = kwargs.pop("generator", None) or Generator(model)
    return tokenizer.decode(generator.generate(ids, max_new_tokens, **kwargs)[0].tolist())
