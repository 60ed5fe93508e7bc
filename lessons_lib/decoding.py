"""Decoding an encoder–decoder model: greedy search and beam search, with a KV cache (lesson 13).

A translation Y = y₁ … y_n of a source X is scored by its log-probability under the model,

    log P(Y | X) = ∑_t log P(y_t | y_<t, X),        with y_n = <eos> when the hypothesis finished,

and |Y| = n counts every scored token, ``<eos>`` included.

* **Greedy**: y_t = argmax_w P(w | y_<t, X), until ``<eos>`` or ``max_length`` tokens.
* **Beam search** keeps the K best partial hypotheses (the beam). At each step every live
  hypothesis is extended by every token; of the K·V candidates the best 2K by log P(Y | X) are
  examined in order: a candidate ending in ``<eos>`` among the first K is *finished* and kept aside
  (it is not extended any more), the first K that do not end in ``<eos>`` form the next beam.
  Finished hypotheses are ranked with GNMT's length penalty (Wu et al., 2016, "Google's Neural
  Machine Translation System", arXiv:1609.08144, eq. 14; α = 0.6 in Vaswani et al., 2017, §6.1):

      score(Y) = log P(Y | X) / lp(Y),        lp(Y) = ((5 + |Y|) / 6)^α

  (α = 0: no normalization, and short translations are favoured, since every token costs
  log-probability). A sentence is done when it holds ``n_best`` finished hypotheses and no live
  one can still beat the ``n_best``-th: a live hypothesis of log-probability s can at best keep s
  and reach ``max_length`` tokens, so its best attainable score is s / lp(max_length) (s ≤ 0,
  lp grows with |Y|). At ``max_length`` the live hypotheses count as finished (unfinished,
  without ``<eos>``). Width 1 with α = 0 is greedy search.

Both searches write real tokens and ``<eos>`` only: ``<pad>`` and ``<bos>`` get log-probability
−∞ (not renormalized: a hypothesis's score is still the model's log P(Y | X)).

**The KV cache** (`Translator`, ``use_cache=True``): the source is encoded once per sentence
(not once per beam), each decoder block's cross-attention keys and values are computed once from
the encoder's output (`Decoder.prefill`), and every step runs the decoder on the one new token,
whose self-attention key and value are appended to the cache (`Decoder.decode_step`). Beams that
are reordered carry their cache with them (a gather over the rows). Without the cache
(``use_cache=False``) every step runs the whole model, encoder included, on the source and the
prefix so far: the same logits (to float rounding) at a cost that grows with the prefix.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from lessons_lib._backend import tf
from lessons_lib._validate import describe
from lessons_lib.seq2seq import EncoderDecoder, check_token_ids, encode_sources

__all__ = [
    "Hypothesis",
    "Translator",
    "length_penalty",
    "greedy_decode",
    "beam_search",
    "translate",
]


def length_penalty(length: Any, alpha: float) -> Any:
    """GNMT's length penalty lp(Y) = ((5 + |Y|) / 6)^α (Wu et al., 2016, eq. 14); lesson 13 §5.

    lp(1) = 1 for every α; α = 0 gives 1 for every length (no normalization). ``length`` may be a
    number or an array.
    """
    return ((5.0 + np.asarray(length, dtype=np.float64)) / 6.0) ** float(alpha)


@dataclasses.dataclass(frozen=True)
class Hypothesis:
    """One translation found by `Translator.greedy` or `Translator.beam_search` (lesson 13 §5).

    Attributes:
        tokens: the generated target ids, without ``<bos>`` and without the final ``<eos>``.
        log_prob: log P(Y | X), summed over every scored token (``<eos>`` included).
        length: |Y|, the number of scored tokens: ``len(tokens) + 1`` if finished, else
            ``len(tokens)``.
        finished: whether it ended with ``<eos>`` (False: it was stopped at ``max_length``).
        score: log_prob / lp(length), the beam's ranking (greedy: α = 0, so ``score ==
            log_prob``).
    """

    tokens: tuple[int, ...]
    log_prob: float
    length: int
    finished: bool
    score: float


def _int_in(value: Any, name: str, low: int, high: int, why: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer in [{low}, {high}] ({why}), got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}] ({why}), got {value!r}")
    return int(value)


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """The column indices of each row's n largest scores, largest first (ties: lower index
    first)."""
    if n < scores.shape[1]:
        idx = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    else:
        idx = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    values = np.take_along_axis(scores, idx, axis=1)
    return np.take_along_axis(idx, np.lexsort((idx, -values), axis=1), axis=1)


class Translator:
    """Greedy and beam-search decoding of an `EncoderDecoder`, with or without a KV cache.

    Derived in lesson 13 §5; the module docstring states the scoring, the stopping rule and the
    cache. Each model call is a compiled ``tf.function`` (the encoder + `Decoder.prefill` at the
    start, `Decoder.decode_step` at each step with the cache; the whole model on the prefix so
    far without it), and the search's bookkeeping (beams, finished hypotheses) is NumPy.

    Args:
        model: a built or unbuilt `EncoderDecoder`.
        jit_compile: XLA-compile the model calls (faster steps on CPU; XLA compiles once per
            shape, so the cache-free path compiles once per prefix length).
        run_eagerly: call the model eagerly instead of through ``tf.function`` (no tracing:
            slower per step, quicker for a handful of tiny calls; the results are the same).

    Source ids may be a ``[B, T_s]`` array padded with the model's ``pad_id`` or a list of id
    lists of different lengths (padded here).
    """

    def __init__(self, model: EncoderDecoder, jit_compile: bool = False, run_eagerly: bool = False):
        if not isinstance(model, EncoderDecoder):
            raise TypeError(f"model must be a lessons_lib.EncoderDecoder, got {describe(model)}")
        self.model = model
        if not model.built:
            ids = np.full((1, 1), model.bos_id, dtype=np.int32)
            model(ids, ids)
        forbidden = np.zeros(model.target_vocab_size, dtype=bool)
        forbidden[[model.pad_id, model.bos_id]] = True
        self._forbidden = tf.constant(forbidden[None])
        if run_eagerly:
            self._start, self._step, self._full = self._start_fn, self._step_fn, self._full_fn
            return
        # one trace each, whatever the batch, beam and lengths (the start: one per max_length)
        dec = model.decoder
        kv = tf.TensorSpec([None, dec.num_heads, None, dec.d_model // dec.num_heads])
        kv = tf.TensorSpec(kv.shape, dec.blocks[0].attn.compute_dtype)
        caches = [(kv, kv)] * dec.num_layers
        ids = tf.TensorSpec([None, None], tf.int32)
        rows = tf.TensorSpec([None], tf.int32)
        mask = tf.TensorSpec([None, None], tf.bool)
        self._start = tf.function(self._start_fn, jit_compile=jit_compile, reduce_retracing=True)
        self._step = tf.function(
            self._step_fn,
            input_signature=[rows, caches, tf.TensorSpec([], tf.int32), caches, mask, rows],
            jit_compile=jit_compile,
        )
        self._full = tf.function(self._full_fn, input_signature=[ids, ids], jit_compile=jit_compile)

    @classmethod
    def for_model(cls, model: EncoderDecoder) -> "Translator":
        """The model's own `Translator`, made on the first call and reused (what `greedy_decode`,
        `beam_search`, `translate` and `BleuEvaluation` use): its compiled functions are traced
        once per model, and they stay valid when new weights are loaded into the model."""
        if not isinstance(model, EncoderDecoder):
            raise TypeError(f"model must be a lessons_lib.EncoderDecoder, got {describe(model)}")
        if model not in _TRANSLATORS:
            _TRANSLATORS[model] = cls(model)
        return _TRANSLATORS[model]

    # --- the compiled model calls -----------------------------------------------------------------
    def _log_probs(self, logits):
        """log softmax(logits), with −∞ for ``<pad>`` and ``<bos>`` (never written)."""
        lp = tf.nn.log_softmax(logits)
        return tf.where(self._forbidden, tf.constant(-np.inf, lp.dtype), lp)

    def _start_fn(self, source_ids, cache_len: int):
        """Encode the source once; `Decoder.prefill` on ``<bos>`` fills the caches and gives the
        distribution of the first token. Returns ``(logits, log_probs, cache, context_kv,
        source_mask)``."""
        m = self.model
        h, mask = m.encode(source_ids, training=False)
        bos = tf.fill([tf.shape(source_ids)[0], 1], m.bos_id)
        logits, cache, context_kv = m.decoder.prefill(bos, h, mask, cache_len=cache_len)
        logits = tf.cast(logits[:, -1], tf.float32)
        return logits, self._log_probs(logits), cache, context_kv, mask

    def _step_fn(self, tokens, cache, pos, context_kv, mask, parents):
        """Reorder the caches to the surviving beams (``parents``: the row each new row continues),
        then one `Decoder.decode_step` of ``tokens`` at ``pos``. Returns ``(logits, log_probs,
        cache)``."""
        cache = [(tf.gather(k, parents), tf.gather(v, parents)) for k, v in cache]
        logits, cache = self.model.decoder.decode_step(tokens, cache, pos, context_kv, mask)
        logits = tf.cast(logits, tf.float32)
        return logits, self._log_probs(logits), cache

    def _full_fn(self, source_ids, prefix):
        """No cache: the whole model on the source and the prefix ``<bos> y₁ … y_t``; the logits of
        its last position. Returns ``(logits, log_probs)``."""
        logits = tf.cast(self.model(source_ids, prefix, training=False)[:, -1], tf.float32)
        return logits, self._log_probs(logits)

    # --- input checks ---------------------------------------------------------------------------
    def check_source(self, source_ids: Any) -> np.ndarray:
        """Source ids as a padded int32 ``[B, T_s]`` array, or a clear error (empty batch, empty
        sentence, ids outside the source vocabulary, more than ``max_len`` tokens); lesson 13 §5."""
        m = self.model
        if (
            isinstance(source_ids, (list, tuple))
            and source_ids
            and all(isinstance(r, (list, tuple, np.ndarray)) for r in source_ids)
        ):
            width = max(len(r) for r in source_ids)
            arr = np.full((len(source_ids), max(width, 1)), m.pad_id, dtype=np.int64)
            for i, r in enumerate(source_ids):
                r = np.asarray(r)
                if r.size and (r.dtype == bool or not np.issubdtype(r.dtype, np.integer)):
                    raise TypeError(
                        f"source_ids[{i}] must hold integer token ids, got {describe(r)}"
                    )
                arr[i, : len(r)] = r
            if width == 0:
                arr = arr[:, :0]
            source_ids = arr
        elif isinstance(source_ids, (list, tuple)) and len(source_ids) == 0:
            raise ValueError("source_ids is an empty batch; give at least one sentence")
        arr = check_token_ids(source_ids, "source_ids", m.source_vocab_size, m.max_len, m.pad_id)
        return arr.astype(np.int32)

    def _max_length(self, max_length: Any) -> int:
        m = self.model
        if max_length is None:
            return m.max_len
        return _int_in(
            max_length,
            "max_length",
            1,
            m.max_len,
            f"<bos> and the first max_length − 1 tokens must fit the decoder's max_len={m.max_len}",
        )

    # --- greedy ---------------------------------------------------------------------------------
    def greedy(
        self,
        source_ids: Any,
        max_length: int | None = None,
        use_cache: bool = True,
        return_logits: bool = False,
    ):
        """Greedy decoding of a batch: y_t = argmax P(· | y_<t, X) until ``<eos>`` or
        ``max_length`` tokens (default: the model's ``max_len``); lesson 13 §5.

        Returns one `Hypothesis` per sentence, and with ``return_logits`` also the logits of
        every step ``[B, steps, V]`` (a finished row is fed ``<eos>`` again; its later logits are
        computed but not used).
        """
        src = self.check_source(source_ids)
        max_length = self._max_length(max_length)
        m = self.model
        b = len(src)
        rows = np.arange(b, dtype=np.int32)
        log_prob = np.zeros(b)
        length = np.zeros(b, dtype=np.int64)
        done = np.zeros(b, dtype=bool)
        tokens = np.zeros((b, 0), dtype=np.int32)
        steps_logits = []
        if use_cache:
            logits, lp, cache, context_kv, mask = self._start(src, max_length)
        else:
            logits, lp = self._full(src, np.full((b, 1), m.bos_id, dtype=np.int32))
        for t in range(max_length):
            lp_np = lp.numpy()
            if return_logits:
                steps_logits.append(logits.numpy())
            nxt = lp_np.argmax(axis=-1).astype(np.int32)
            live = ~done
            log_prob[live] += lp_np[rows[live], nxt[live]]
            length[live] += 1
            nxt[done] = m.eos_id  # a finished row is fed <eos> again
            tokens = np.concatenate([tokens, nxt[:, None]], axis=1)
            done |= nxt == m.eos_id
            if done.all() or t + 1 == max_length:
                break
            if use_cache:
                logits, lp, cache = self._step(
                    nxt, cache, tf.constant(t + 1), context_kv, mask, rows
                )
            else:
                prefix = np.concatenate([np.full((b, 1), m.bos_id, np.int32), tokens], axis=1)
                logits, lp = self._full(src, prefix)
        hyps = []
        for i in range(b):
            row = tokens[i].tolist()
            finished = m.eos_id in row
            kept = row[: row.index(m.eos_id)] if finished else row
            hyps.append(
                Hypothesis(
                    tuple(kept), float(log_prob[i]), int(length[i]), finished, float(log_prob[i])
                )
            )
        if return_logits:
            return hyps, np.stack(steps_logits, axis=1)
        return hyps

    # --- beam search ------------------------------------------------------------------------------
    def beam_search(
        self,
        source_ids: Any,
        beam_width: int = 4,
        max_length: int | None = None,
        length_penalty: float = 0.6,
        use_cache: bool = True,
        n_best: int | None = None,
    ):
        """Beam search over a batch of sentences (the rules are in the module docstring); lesson
        13 §5.

        Args:
            source_ids: ``[B, T_s]`` padded ids or a list of id lists.
            beam_width: K, in 1 … target vocabulary size.
            max_length: most tokens per hypothesis, ``<eos>`` included (default: ``max_len``).
            length_penalty: α ≥ 0 of lp(Y) = ((5 + |Y|) / 6)^α (0.6 as in Vaswani et al.).
            use_cache: decode with the KV cache (else recompute the whole model every step).
            n_best: None returns the best `Hypothesis` of each sentence; an int n ≤ K returns each
                sentence's list of its n best, best first.
        """
        src = self.check_source(source_ids)
        max_length = self._max_length(max_length)
        v = self.model.target_vocab_size
        k = _int_in(
            beam_width,
            "beam_width",
            1,
            v,
            f"at most the target vocabulary size {v}: the first step has only {v} candidates",
        )
        alpha = length_penalty
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)):
            raise ValueError(f"length_penalty must be a number α ≥ 0, got {alpha!r}")
        if not (math.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"length_penalty must be a finite number α ≥ 0, got {alpha!r}")
        n = 1 if n_best is None else _int_in(n_best, "n_best", 1, k, "at most beam_width")
        found = self._search(src, k, max_length, float(alpha), use_cache, n)
        return [f[0] for f in found] if n_best is None else found

    def _search(
        self, src: np.ndarray, k: int, max_length: int, alpha: float, use_cache: bool, n_best: int
    ) -> list[list[Hypothesis]]:
        """The beam search itself, on checked arguments (any width ≥ 1: the tests also run it
        wider than the vocabulary, wide enough to keep every hypothesis)."""
        m = self.model
        b, v, eos = len(src), m.target_vocab_size, m.eos_id
        finished: list[list[Hypothesis]] = [[] for _ in range(b)]
        done = np.zeros(b, dtype=bool)
        lp_max = float(length_penalty(max_length, alpha))
        if use_cache:
            _, lp, cache, context_kv, mask = self._start(src, max_length)
        else:
            _, lp = self._full(src, np.full((b, 1), m.bos_id, dtype=np.int32))
            src_beams = np.repeat(src, k, axis=0)
        scores = np.zeros((b, 1))  # log P of each live hypothesis; -inf: an empty slot
        seqs = np.zeros((b, 1, 0), dtype=np.int32)
        for t in range(max_length):  # t tokens generated so far; this step chooses token t + 1
            k_prev = scores.shape[1]
            cand = (scores[:, :, None] + lp.numpy().reshape(b, k_prev, v)).reshape(b, -1)
            order = _top(cand, min(2 * k, k_prev * v))
            new_scores = np.full((b, k), -np.inf)
            parent = np.zeros((b, k), dtype=np.int64)
            token = np.full((b, k), eos, dtype=np.int32)  # an empty slot is fed <eos>
            lp_next = float(length_penalty(t + 1, alpha))
            for i in np.flatnonzero(~done):
                filled = 0
                for rank, c in enumerate(order[i]):
                    s = cand[i, c]
                    if s == -np.inf:
                        break
                    j, w = divmod(int(c), v)
                    if w == eos:
                        if rank < k:  # finished: kept aside, never extended
                            toks = tuple(seqs[i, j].tolist())
                            finished[i].append(
                                Hypothesis(toks, float(s), t + 1, True, float(s / lp_next))
                            )
                        continue
                    new_scores[i, filled], parent[i, filled], token[i, filled] = s, j, w
                    filled += 1
                    if filled == k:
                        break
            seqs = np.concatenate(
                [np.take_along_axis(seqs, parent[:, :, None], axis=1), token[:, :, None]], axis=2
            )
            last = t + 1 == max_length
            for i in np.flatnonzero(~done):
                if last:  # the live hypotheses stop here, unfinished
                    for j in np.flatnonzero(new_scores[i] > -np.inf):
                        s = float(new_scores[i, j])
                        finished[i].append(
                            Hypothesis(tuple(seqs[i, j].tolist()), s, t + 1, False, s / lp_next)
                        )
                finished[i].sort(key=lambda h: -h.score)  # stable: earlier first among ties
                best_live = new_scores[i].max()
                if last or best_live == -np.inf:
                    done[i] = True
                elif len(finished[i]) >= n_best and finished[i][n_best - 1].score >= (
                    best_live / lp_max
                ):
                    done[i] = True
            if done.all():
                break
            rows = (np.arange(b)[:, None] * k_prev + parent).reshape(-1).astype(np.int32)
            flat = token.reshape(-1)
            if use_cache:
                if k_prev == 1 and k > 1:  # one row per sentence so far: one per beam from now on
                    context_kv = [(tf.repeat(a, k, 0), tf.repeat(c, k, 0)) for a, c in context_kv]
                    mask = tf.repeat(mask, k, 0)
                _, lp, cache = self._step(flat, cache, tf.constant(t + 1), context_kv, mask, rows)
            else:
                prefix = np.concatenate(
                    [np.full((b * k, 1), m.bos_id, np.int32), seqs.reshape(b * k, -1)], axis=1
                )
                _, lp = self._full(src_beams, prefix)
            scores = new_scores
        return [f[:n_best] for f in finished]

    # --- text in, text out ------------------------------------------------------------------------
    def translate(
        self,
        texts: Sequence[str],
        source_tokenizer: Any,
        target_tokenizer: Any,
        beam_width: int = 1,
        max_length: int | None = None,
        length_penalty: float = 0.6,
        batch_size: int = 64,
        use_cache: bool = True,
    ) -> list[str]:
        """Translate sentences: encode (`encode_sources`), search (greedy for ``beam_width=1``,
        else `beam_search`), decode without the special tokens. Lesson 13 §6.

        The sentences go through in batches of ``batch_size``, each cut to its longest source.
        """
        m = self.model
        ids = encode_sources(source_tokenizer, texts, m.max_len)
        batch_size = _int_in(batch_size, "batch_size", 1, 1 << 30, "sentences per batch")
        out: list[str] = []
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            width = int((chunk != m.pad_id).sum(axis=1).max())
            chunk = chunk[:, :width]
            if beam_width == 1:
                hyps = self.greedy(chunk, max_length, use_cache=use_cache)
            else:
                hyps = self.beam_search(
                    chunk, beam_width, max_length, length_penalty, use_cache=use_cache
                )
            out += [target_tokenizer.decode(list(h.tokens), skip_special_tokens=True) for h in hyps]
        return out


_TRANSLATORS: "weakref.WeakKeyDictionary[EncoderDecoder, Translator]" = weakref.WeakKeyDictionary()


def greedy_decode(model: EncoderDecoder, source_ids: Any, **kwargs) -> Any:
    """`Translator.greedy` with the model's own `Translator` (made once, reused); lesson 13 §5."""
    return Translator.for_model(model).greedy(source_ids, **kwargs)


def beam_search(model: EncoderDecoder, source_ids: Any, beam_width: int = 4, **kwargs) -> Any:
    """`Translator.beam_search` with the model's own `Translator`; lesson 13 §5."""
    return Translator.for_model(model).beam_search(source_ids, beam_width, **kwargs)


def translate(
    model: EncoderDecoder,
    texts: Sequence[str],
    source_tokenizer: Any,
    target_tokenizer: Any,
    **kwargs,
) -> list[str]:
    """`Translator.translate` with the model's own `Translator`; lesson 13 §6."""
    return Translator.for_model(model).translate(
        texts, source_tokenizer, target_tokenizer, **kwargs
    )
