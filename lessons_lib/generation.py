"""Text generation: decoding strategies and a KV cache (lesson 10).

At each step the model gives logits z for the next token. The strategies (lesson 10 §1) differ in
which part of p = softmax(z / τ) they keep before drawing:

* **greedy**: argmaxᵢ zᵢ (deterministic, often repetitive);
* **temperature** τ: divide the logits by τ (``< 1`` sharpens, ``> 1`` flattens);
* **top-k** (Fan et al., 2018): keep the ``k`` largest logits, renormalize;
* **top-p / nucleus** (Holtzman et al., 2020): keep the smallest set of most likely tokens whose
  probability reaches ``p``, renormalize.

`Generator` runs each path as one XLA-compiled loop, with sampling done in TensorFlow; the
NumPy functions here are the readable reference of the same strategies (lesson 10 §1.5 compares
them).

A **KV cache** (lesson 10 §5) stores every layer's keys and values for the tokens seen so far, so
each new token costs one query row instead of a forward pass over the whole window. Within
``max_len`` it gives exactly the logits of full recomputation.

Beyond ``max_len`` (lesson 10 §6): the model was trained on windows of ``max_len`` tokens with
absolute positions, so a longer context keeps the **last** ``max_len`` tokens. Without a cache that
is exact at every step. With the cache, when it fills up we keep the last ``max_len // 2`` tokens,
re-fill the cache from them in one forward pass, and continue, so the context then varies between
``max_len // 2`` and ``max_len`` tokens (re-filling at every step would be exact but would cost as
much as having no cache).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from lessons_lib._backend import tf
from lessons_lib._validate import describe


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(
        x, (bool, np.bool_)
    )


def _check_sampling(
    vocab_size: int, temperature: float, top_k: int | None, top_p: float | None
) -> None:
    if not _is_number(temperature) or not temperature > 0:
        raise ValueError(
            f"temperature must be a number > 0 (use greedy=True for argmax), got {temperature!r}"
        )
    if top_k is not None and (
        isinstance(top_k, (bool, np.bool_))
        or not isinstance(top_k, (int, np.integer))
        or not 0 < top_k <= vocab_size
    ):
        raise ValueError(f"top_k must be an integer in [1, vocab_size={vocab_size}], got {top_k!r}")
    if top_p is not None and (not _is_number(top_p) or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """Set every logit below the ``k``-th largest (per row) to ``-inf``; ties with it are kept.

    Top-k sampling, lesson 10 §1.3.
    """
    logits = np.asarray(logits, dtype=np.float64)
    _check_sampling(logits.shape[-1], 1.0, k, None)
    kth = np.sort(logits, axis=-1)[..., -k][..., None]
    return np.where(logits < kth, -np.inf, logits)


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    """Keep the smallest set of most probable tokens whose total probability is ``>= p`` (per row).

    Top-p (nucleus) sampling, lesson 10 §1.4: sort the probabilities in decreasing order and keep a
    token when the mass strictly before it is ``< p`` (so the most likely token is always kept); the
    others get ``-inf``.
    """
    logits = np.asarray(logits, dtype=np.float64)
    _check_sampling(logits.shape[-1], 1.0, None, p)
    order = np.argsort(-logits, axis=-1, kind="stable")
    sorted_logits = np.take_along_axis(logits, order, axis=-1)
    probs = np.exp(sorted_logits - sorted_logits[..., :1])
    probs /= probs.sum(axis=-1, keepdims=True)
    before = np.cumsum(probs, axis=-1) - probs  # probability mass strictly before each token
    drop_sorted = before >= p  # the first token is always kept (before = 0 < p)
    drop = np.zeros_like(drop_sorted)
    np.put_along_axis(drop, order, drop_sorted, axis=-1)
    return np.where(drop, -np.inf, logits)


def next_token_distribution(
    logits: Any, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> np.ndarray:
    """The distribution each strategy draws from: temperature, then top-k, then top-p, then softmax.

    Lesson 10 §1: q = softmax(top_p(top_k(z / τ))), over the last axis of ``logits``.
    """
    z = np.asarray(logits, dtype=np.float64)
    _check_sampling(z.shape[-1], temperature, top_k, top_p)
    z = z / temperature
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sample_next(
    logits: Any,
    rng: np.random.Generator,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
) -> np.ndarray:
    """Draw one token id per row of ``logits [B, vocab]`` (argmax when ``greedy``).

    Lesson 10 §1.5: ``rng.choice(vocab, p=q)`` with q = `next_token_distribution` of each row.
    """
    z = np.asarray(logits, dtype=np.float64)
    if greedy:
        return z.argmax(axis=-1)
    p = next_token_distribution(z, temperature, top_k, top_p)
    return np.array([rng.choice(p.shape[-1], p=row) for row in p])


def _tf_sample(logits, seed, step, temperature, top_k, top_p, greedy):
    """The strategies of `next_token_distribution` in TensorFlow, for the compiled loops.

    Sampling then runs inside the compiled generation loop (lesson 10 §1.5 checks it against the
    NumPy reference). ``top_k = 0`` and ``top_p = 1`` switch those filters off. Draws are
    reproducible: token number ``step`` is drawn with the stateless seed ``(seed, step)``.
    """
    z = logits / temperature
    vocab = tf.shape(z)[-1]
    k = tf.where(top_k > 0, top_k, vocab)
    kth = tf.gather(tf.sort(z, axis=-1, direction="DESCENDING"), k - 1, axis=-1)[:, None]
    z = tf.where(z < kth, tf.constant(-np.inf, z.dtype), z)
    sorted_z = tf.sort(z, axis=-1, direction="DESCENDING")
    # the probability mass strictly before each token
    before = tf.cumsum(tf.nn.softmax(sorted_z, axis=-1), axis=-1, exclusive=True)
    threshold = tf.reduce_min(
        tf.where(before < top_p, sorted_z, tf.constant(np.inf, z.dtype)), axis=-1
    )
    z = tf.where(z < threshold[:, None], tf.constant(-np.inf, z.dtype), z)
    drawn = tf.random.stateless_categorical(z, 1, seed=tf.stack([seed, step]), dtype=tf.int32)[:, 0]
    return tf.where(greedy, tf.argmax(logits, axis=-1, output_type=tf.int32), drawn)


def _set_column(t, col, values):
    """``t[:, col] = values`` for a ``[batch, slots, ...]`` tensor (XLA-friendly: one scatter)."""
    batch = tf.shape(t)[0]
    return tf.tensor_scatter_nd_update(
        t, tf.stack([tf.range(batch), tf.fill([batch], col)], 1), values
    )


class Generator:
    """Compiled generation for a `GPT`, with or without a KV cache.

    Lesson 10 §5 (the cache) and §6 (texts longer than the window).

    Each path is one XLA-compiled loop (``tf.while_loop``) that runs up to ``max_len`` steps —
    model, sampling and bookkeeping — without returning to Python, so what the benchmark measures is
    the model's arithmetic, not Python overhead. Shapes are fixed (``[batch, max_len]`` windows), so
    each path compiles once.

    * ``use_cache=False``: every step runs the model on the window of the last ``max_len`` tokens.
    * ``use_cache=True``: `GPT.prefill` fills the cache from the window, then every step runs
      `GPT.decode_step` on one token (`_cached_loop_fn`, shown in lesson 10 §5). The
      re-fill rule beyond ``max_len`` is in the module docstring (lesson 10 §6).
    """

    def __init__(self, model, jit_compile: bool = True):
        self.model = model
        self.max_len = model.max_len
        if not model.built:
            model(np.zeros((1, 1), dtype=np.int32))
        self._window_loop = tf.function(self._window_loop_fn, jit_compile=jit_compile)
        self._cached_loop = tf.function(self._cached_loop_fn, jit_compile=jit_compile)

    # Both loops return (tokens [B, S], logits [B, S, V]) for S = max_len + 1 slots, of which
    # n_steps are used.
    def _buffers(self, batch):
        slots = self.max_len + 1
        return (
            tf.zeros((batch, slots), tf.int32),
            tf.zeros((batch, slots, self.model.vocab_size), tf.float32),
        )

    def _window_loop_fn(
        self, window, n_valid, n_steps, step0, seed, temperature, top_k, top_p, greedy
    ):
        """Decoding without a cache (lesson 10 §1 and §6): the whole window at every step.

        Every step runs the model over the window ``[B, max_len]``, whose first ``n_valid`` tokens
        are real, and keeps the logits of the last real one.
        """
        batch = tf.shape(window)[0]
        tokens, logits_out = self._buffers(batch)
        full = self.max_len

        def body(i, window, n_valid, tokens, logits_out):
            logits = tf.cast(tf.gather(self.model(window), n_valid - 1, axis=1), tf.float32)
            tok = _tf_sample(logits, seed, step0 + i, temperature, top_k, top_p, greedy)
            tokens, logits_out = _set_column(tokens, i, tok), _set_column(logits_out, i, logits)
            # append the token: write it after the last valid one, or slide a full window left
            slid = tf.concat([window[:, 1:], tok[:, None]], axis=1)
            written = _set_column(window, tf.minimum(n_valid, full - 1), tok)
            window = tf.where(n_valid >= full, slid, written)
            return i + 1, window, tf.minimum(n_valid + 1, full), tokens, logits_out

        _, _, _, tokens, logits_out = tf.while_loop(
            lambda i, *_: i < n_steps,
            body,
            (tf.constant(0), window, n_valid, tokens, logits_out),
            maximum_iterations=self.max_len + 1,
        )
        return tokens, logits_out

    def _cached_loop_fn(
        self, window, keep, n_steps, step0, seed, temperature, top_k, top_p, greedy
    ):
        """Decoding with a KV cache (lesson 10 §5): one prefill pass, then one token per step.

        ``window [B, max_len]`` holds the last ``keep`` tokens of each sequence, right-padded
        (causality makes the padding harmless). ``GPT.prefill`` runs the model over it once and
        returns the logits and every layer's keys and values: the cache. Then step ``i``, for
        ``i = 0 … n_steps − 1``,

        1. draws token ``i`` from the current logits (seed ``(seed, step0 + i)``: the same draw as
           without a cache),
        2. records the token and the logits it was drawn from,
        3. feeds that one token to ``GPT.decode_step`` at position ``keep + i``, which writes its
           key and value into the cache and returns the logits of the next token: one query row
           instead of a pass over the window.

        The last step skips the decode (its logits would not be used). ``generate`` keeps
        ``n_steps ≤ max_len − keep + 1``, so the cache never overflows, and re-fills it when it is
        full (lesson 10 §6). Returns ``(tokens [B, max_len + 1], logits [B, max_len + 1, V])``, of
        which the first ``n_steps`` columns are used.
        """
        batch = tf.shape(window)[0]
        tokens, logits_out = self._buffers(batch)
        # one pass over the window fills the cache; the last real token's logits give token 0
        all_logits, cache = self.model.prefill(window)
        logits = tf.cast(tf.gather(all_logits, keep - 1, axis=1), tf.float32)

        def decode(tok, cache, i):
            # one token in: its key and value go into the cache at keep + i, its logits come out
            return self.model.decode_step(tok, cache, keep + i)

        def body(i, logits, cache, tokens, logits_out):
            tok = _tf_sample(logits, seed, step0 + i, temperature, top_k, top_p, greedy)
            tokens = _set_column(tokens, i, tok)
            logits_out = _set_column(logits_out, i, logits)
            # the last step's logits would not be used: skip its decode
            new_logits, new_cache = tf.cond(
                i + 1 < n_steps,
                lambda: decode(tok, cache, i),
                lambda: (tf.cast(logits, all_logits.dtype), cache),
            )
            return i + 1, tf.cast(new_logits, tf.float32), new_cache, tokens, logits_out

        _, _, _, tokens, logits_out = tf.while_loop(
            lambda i, *_: i < n_steps,
            body,
            (tf.constant(0), logits, cache, tokens, logits_out),
            maximum_iterations=self.max_len + 1,
        )
        return tokens, logits_out

    def _window(self, seqs: np.ndarray, keep: int) -> np.ndarray:
        # right padding: causality ignores it
        ids = np.zeros((seqs.shape[0], self.max_len), dtype=np.int32)
        ids[:, :keep] = seqs[:, -keep:]
        return ids

    def generate(
        self,
        prompt_ids: Sequence[int] | np.ndarray,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        greedy: bool = False,
        seed: int = 0,
        use_cache: bool = True,
        return_logits: bool = False,
    ):
        """Continue ``prompt_ids`` (``[T]``, or ``[batch, T]`` of equal rows) by ``max_new_tokens``.

        Lesson 10 §3 (samples), §5.3 (the same logits with and without the cache) and §6 (texts
        longer than ``max_len``).

        Token number ``n`` is drawn with the stateless seed ``(seed, n)``, so both paths draw the
        same tokens from the same logits. Returns the new ids ``[batch, max_new_tokens]`` (and the
        logits used at each step if ``return_logits``).
        """
        given = prompt_ids
        prompt = np.asarray(prompt_ids)
        if prompt.ndim == 1:
            prompt = prompt[None]
        if prompt.ndim != 2 or prompt.shape[1] == 0:
            raise ValueError(
                f"prompt must be a non-empty sequence of token ids, got {describe(given)}"
            )
        if not np.issubdtype(prompt.dtype, np.integer):
            raise TypeError(f"prompt must hold integer token ids, got {describe(given)}")
        vocab = self.model.vocab_size
        if prompt.min() < 0 or prompt.max() >= vocab:
            raise ValueError(
                f"prompt ids must be in [0, {vocab}), got min {prompt.min()} and max {prompt.max()}"
            )
        if (
            isinstance(max_new_tokens, bool)
            or not isinstance(max_new_tokens, (int, np.integer))
            or max_new_tokens < 1
        ):
            raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        if not greedy:
            _check_sampling(vocab, temperature, top_k, top_p)
        params = (
            tf.constant(int(seed), tf.int32),
            tf.constant(float(temperature), tf.float32),
            tf.constant(int(top_k or 0), tf.int32),
            tf.constant(float(top_p or 1.0), tf.float32),
            tf.constant(bool(greedy)),
        )
        seqs = prompt.astype(np.int32)
        new, used = [], []
        done, first = 0, True
        while done < max_new_tokens:
            if use_cache:
                # one prefill, then decode until the cache is full (see the module docstring)
                keep = min(seqs.shape[1], self.max_len) if first else self.max_len // 2
                steps = min(max_new_tokens - done, self.max_len - keep + 1)
                toks, logits = self._cached_loop(
                    self._window(seqs, keep),
                    tf.constant(keep),
                    tf.constant(steps),
                    tf.constant(done),
                    *params,
                )
            else:
                keep = min(seqs.shape[1], self.max_len)
                steps = min(max_new_tokens - done, self.max_len)
                toks, logits = self._window_loop(
                    self._window(seqs, keep),
                    tf.constant(keep),
                    tf.constant(steps),
                    tf.constant(done),
                    *params,
                )
            toks = toks.numpy()[:, :steps]
            new.append(toks)
            used.append(logits.numpy()[:, :steps])
            seqs = np.concatenate([seqs, toks], axis=1)
            done += steps
            first = False
        out = np.concatenate(new, axis=1)
        return (out, np.concatenate(used, axis=1)) if return_logits else out


def generate_text(model, tokenizer, prompt: str, max_new_tokens: int = 200, **kwargs) -> str:
    """Encode ``prompt``, continue it with `Generator.generate`, decode the new tokens.

    Used for the samples of lesson 09 §5 and lesson 10 §3–§4; ``generator`` (a keyword) reuses a
    `Generator` and its compiled loops, the other keywords go to `Generator.generate`.
    """
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    if not prompt:
        raise ValueError("prompt must not be empty: give at least one character to start from")
    ids = tokenizer.encode(prompt)
    generator = kwargs.pop("generator", None) or Generator(model)
    return tokenizer.decode(generator.generate(ids, max_new_tokens, **kwargs)[0].tolist())
