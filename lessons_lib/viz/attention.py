"""The attention explorer: see which keys each query attends to, per layer and head.

Used in lesson 05 §4 and §8 (the heads of one layer, cross-attention), lesson 08 §7 (every layer and
head of a GPT) and lesson 09 §7 (the trained heads). Attention weights are row-stochastic matrices,
one per layer l and head h (derived in lesson 04 §1 and lesson 05 §2):

    A⁽ˡʰ⁾ = softmax_row(Q⁽ˡʰ⁾ K⁽ˡʰ⁾ᵀ / √d_k + M) ∈ [0, 1]^{T_q×T_k},     ∑ⱼ A⁽ˡʰ⁾ᵢⱼ = 1,

where row i belongs to query token i, column j to key token j, and the mask M (−∞ where blocked)
makes blocked weights exactly 0. `AttentionExplorer` takes such weights shaped ``[layers,
heads, T_q, T_k]`` (or fewer/more axes, see below), checks that they really are attention weights,
and shows them: a heatmap per selected head side by side (small multiples), the selected query's row
highlighted, the key tokens it attends to with their weights, and the blocked cells of the mask.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lessons_lib._validate import bool_mask, describe, float_array
from lessons_lib.viz._base import (
    BLUES,
    HIGHLIGHT,
    View,
    as_tokens,
    fmt,
    index_in_range,
    new_figure,
    plain_label,
    short,
    to_float32_bytes,
    unique_sorted,
)

_UNSET: Any = object()
MAX_VALUES = 4_000_000  # layers * heads * T_q * T_k sent to the browser (16 MB as float32)
SHAPES = (
    "[T_q, T_k], [heads, T_q, T_k], [layers, heads, T_q, T_k], or [batch, layers, heads, T_q, T_k] "
    "(the last with batch_index=)"
)


class AttentionExplorer(View):
    """Interactive attention weights: pick a layer and heads, hover/click a query token, toggle the
    mask.

    Lesson 05 §4 and §8, lesson 08 §7, lesson 09 §7. Heads and layers are counted from 0.

    Args:
        weights: attention weights (after the softmax), any of

            * ``[T_q, T_k]``: one head;
            * ``[heads, T_q, T_k]``: the heads of one layer (e.g. ``thread.forward()["weights"]``);
            * ``[layers, heads, T_q, T_k]``: a whole model;
            * with ``batch_index=b``, the same with a leading batch axis: ``MultiHeadAttention(...,
              return_attention=True)`` gives ``[batch, heads, T_q, T_k]`` and ``GPT(ids,
              return_attention=True)`` gives ``[batch, layers, heads, T, T]``; a 5-D array with
              batch size 1 needs no ``batch_index``. `from_model` runs a model and does this
              for you.

            NumPy arrays, ``tf.Tensor`` s and nested lists are accepted. Each row must be a
            probability distribution over the keys: entries ``>= 0`` summing to 1 (within ``atol``).
        tokens: the query tokens, one per row (a list of strings/ids, or one string split on
            spaces).
        key_tokens: the key tokens, one per column; needed for cross-attention (``T_k != T_q``),
            defaults to ``tokens``.
        batch_index: which sequence of a batched array to show (see ``weights``).
        layer: the layer shown first.
        heads: the heads shown side by side (an int, a list, or ``"all"``); default: all heads if
            there are at most 4, else heads 0-3.
        query: the query (row) highlighted first, or ``None``.
        mask: ``None`` (default) detects a causal mask (square weights that are exactly 0 above the
            diagonal); ``"causal"``/``True`` or ``False`` say it explicitly; or a ``[T_q, T_k]``
            boolean array (``True``/1 = may attend, the course's convention). Blocked weights must
            be 0.
        show_mask: start with the blocked cells drawn (grey) instead of as weight 0.
        title: a title for the view.
        atol: tolerance of the row-sum and blocked-weight checks (float32 weights sum to 1 within
            ~1e-6).

    Raises:
        ValueError: weights of an unsupported rank, tokens and weights of different lengths, rows
            that do not sum to 1 (e.g. scores passed instead of weights), negative or non-finite
            weights, weights where the mask blocks, or a layer/head/query index out of range.
            TypeError for non-float weights or odd tokens.

    Example::

        state = thread.forward()
        view = AttentionExplorer(state["weights"], thread.SENTENCE, query=2)  # 1 layer, 2 heads
        view                                # live in Jupyter, PNG elsewhere
        view.top_keys(2, head=1)            # [(2, 'or', 0.5...), ...]
    """

    kind = "attention"

    def __init__(
        self,
        weights: Any,
        tokens: Any,
        key_tokens: Any = None,
        *,
        batch_index: int | None = None,
        layer: int = 0,
        heads: Any = None,
        query: int | None = None,
        mask: Any = None,
        show_mask: bool = True,
        title: str | None = None,
        atol: float = 1e-3,
    ):
        super().__init__()
        self._atol = float(atol)
        w = _as_4d(weights, batch_index)
        self._w = w
        self._w.setflags(write=False)
        n_layers, n_heads, t_q, t_k = w.shape
        self.q_tokens = as_tokens(tokens, "tokens")
        if len(self.q_tokens) != t_q:
            raise ValueError(
                f"tokens has {len(self.q_tokens)} items but the weights have T_q = {t_q} "
                f"query rows (weights of shape {tuple(w.shape)} as [layers, heads, T_q, T_k]): "
                "give one token per query position"
            )
        if key_tokens is None:
            if t_k != t_q:
                raise ValueError(
                    f"the weights have T_q = {t_q} query rows but T_k = {t_k} key columns "
                    "(cross-attention?): pass key_tokens= with one token per key"
                )
            self.k_tokens = list(self.q_tokens)
        else:
            self.k_tokens = as_tokens(key_tokens, "key_tokens")
            if len(self.k_tokens) != t_k:
                raise ValueError(
                    f"key_tokens has {len(self.k_tokens)} items but the weights have "
                    f"T_k = {t_k} key columns "
                    f"(weights of shape {tuple(w.shape)} as [layers, heads, T_q, T_k])"
                )
        _check_rows(w, self._atol)
        self._allowed, self.mask_kind = _resolve_mask(mask, w, self._atol)
        self.title = "" if title is None else str(title)
        if heads is None:
            heads = list(range(n_heads)) if n_heads <= 4 else [0, 1, 2, 3]
        self._state = self._checked_state(
            {"layer": layer, "heads": heads, "query": query, "show_mask": bool(show_mask)}
        )

    # --- construction from a model ----------------------------------------------------------------
    @classmethod
    def from_model(
        cls,
        model: Any,
        inputs: Any,
        tokens: Any = None,
        key_tokens: Any = None,
        *,
        context: Any = None,
        vocab: Any = None,
        batch_index: int = 0,
        which: str = "self",
        call_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> AttentionExplorer:
        """Run a ``lessons_lib`` model and explore its attention weights (lessons 05, 08, 09).

        Lesson 05 §8 (cross-attention), lesson 08 §7 (every layer of a GPT), lesson 09 §7.

        Args:
            model: a `GPT` (``inputs`` = token ids ``[batch, T]`` or ``[T]``;
                all layers), an `EncoderDecoder` (``inputs = (source_ids, target_ids)``, the
                decoder input; ``which="cross"`` shows target rows × source columns, every
                decoder layer, lesson 13 §8; the padding is cut off), a `MultiHeadAttention` or a
                `TransformerBlock` (``inputs`` = ``x [batch, T, d_model]`` or
                ``[T, d_model]``; one layer).
            inputs: what the model is called with.
            tokens: the query tokens; for a GPT they default to ``vocab[id]`` (or the ids as text).
            key_tokens: the key tokens (cross-attention).
            context: keys/values for cross-attention (``layer(x, context)``).
            vocab: for a GPT without ``tokens``: a sequence or mapping ``id -> token`` or a
                callable.
            batch_index: which sequence of the batch to show.
            which: for a block with cross-attention, ``"self"`` or ``"cross"`` weights; for an
                `EncoderDecoder` ``"cross"``, ``"encoder"`` or ``"decoder"``.
            call_kwargs: extra call arguments, e.g. ``{"use_causal_mask": True}`` or ``{"mask":
            m}``. **kwargs: passed on to `AttentionExplorer` (``query=``, ``heads=``,
            ``title=`` ...).
        """
        from lessons_lib.attention import MultiHeadAttention
        from lessons_lib.block import TransformerBlock
        from lessons_lib.gpt import GPT
        from lessons_lib.seq2seq import EncoderDecoder

        call_kwargs = dict(call_kwargs or {})
        if isinstance(model, EncoderDecoder):
            if not isinstance(inputs, (tuple, list)) or len(inputs) != 2:
                raise ValueError(
                    "an EncoderDecoder takes inputs=(source_ids, target_ids) (the decoder input "
                    f"<bos> y1 ... y_n), got {describe(inputs)}"
                )
            if which not in ("cross", "encoder", "decoder"):
                raise ValueError(
                    "for an EncoderDecoder, which must be 'cross' (target rows × source columns), "
                    f"'encoder' or 'decoder' (self-attention), got {which!r}"
                )
            src, tgt = (np.asarray(a.numpy() if hasattr(a, "numpy") else a) for a in inputs)
            src, tgt = (a[None] if a.ndim == 1 else a for a in (src, tgt))
            _, w = model(src, tgt, return_attention=True, **call_kwargs)
            b = index_in_range(batch_index, src.shape[0], "batch_index", "the batch", "sentences")
            real_s = int((src[b] != model.pad_id).sum())
            real_t = int((tgt[b] != model.pad_id).sum())
            rows, cols = {
                "cross": (real_t, real_s),
                "encoder": (real_s, real_s),
                "decoder": (real_t, real_t),
            }[which]
            weights = np.asarray(w[which])[b, :, :, :rows, :cols]  # padding cut off
            return cls(weights, tokens, key_tokens, **kwargs)
        if isinstance(model, GPT):
            ids = np.asarray(inputs.numpy() if hasattr(inputs, "numpy") else inputs)
            if ids.ndim == 1:
                ids = ids[None]
            if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
                raise ValueError(
                    f"a GPT takes integer token ids [batch, T] or [T], got {describe(ids)}"
                )
            _, w = model(ids, return_attention=True, **call_kwargs)
            weights = np.asarray(w)  # [B, L, H, T, T]
            if tokens is None:
                b = index_in_range(
                    batch_index, ids.shape[0], "batch_index", "the batch of ids", "sequences"
                )
                tokens = [_lookup(vocab, int(i)) for i in ids[b]]
        elif isinstance(model, (MultiHeadAttention, TransformerBlock)):
            x = _batched_float(inputs, "inputs (x)")
            args = (x,) if context is None else (x, _batched_float(context, "context"))
            out = model(*args, return_attention=True, **call_kwargs)
            if isinstance(model, MultiHeadAttention):
                w = out[1]
            elif which == "self":
                w = out[1]
            elif which == "cross":
                if len(out) < 3:
                    raise ValueError("which='cross' needs a block built with cross_attention=True")
                w = out[2]
            else:
                raise ValueError(f"which must be 'self' or 'cross', got {which!r}")
            weights = np.asarray(w)[:, None]  # [B, 1, H, T_q, T_k]
        else:
            raise TypeError(
                "from_model expects a lessons_lib GPT, MultiHeadAttention or TransformerBlock, got "
                f"{type(model).__name__}; for other models pass the weights to AttentionExplorer()"
            )
        if tokens is None:
            raise ValueError(
                "pass tokens= (one per query position) for a MultiHeadAttention or TransformerBlock"
            )
        return cls(weights, tokens, key_tokens, batch_index=batch_index, **kwargs)

    # --- data -------------------------------------------------------------------------------------
    @property
    def weights(self) -> np.ndarray:
        """The validated weights, ``[layers, heads, T_q, T_k]`` (read-only)."""
        return self._w

    @property
    def num_layers(self) -> int:
        return self._w.shape[0]

    @property
    def num_heads(self) -> int:
        return self._w.shape[1]

    @property
    def allowed(self) -> np.ndarray | None:
        """The mask as ``[T_q, T_k]`` booleans (``True`` = may attend), or ``None`` if none."""
        return None if self._allowed is None else self._allowed.copy()

    def _spec(self) -> dict[str, Any]:
        n_layers, n_heads, t_q, t_k = self._w.shape
        return {
            "title": self.title,
            "layers": n_layers,
            "heads": n_heads,
            "tq": t_q,
            "tk": t_k,
            "q_tokens": self.q_tokens,
            "k_tokens": self.k_tokens,
            "mask_kind": self.mask_kind,
            "mask": None if self._allowed is None else self._allowed.astype(int).ravel().tolist(),
        }

    def _values(self) -> bytes:
        return to_float32_bytes(self._w)

    # --- selection --------------------------------------------------------------------------------
    def _checked_state(self, state: dict[str, Any]) -> dict[str, Any]:
        n_layers, n_heads, t_q, _ = self._w.shape
        layer = index_in_range(state.get("layer", 0), n_layers, "layer", "this explorer")
        heads = state.get("heads")
        if isinstance(heads, str):
            if heads != "all":
                raise ValueError(f"heads must be an int, a list of ints or 'all', got {heads!r}")
            heads = list(range(n_heads))
        elif isinstance(heads, (int, np.integer)) and not isinstance(heads, bool):
            heads = [heads]
        if not isinstance(heads, (list, tuple, np.ndarray)) or len(heads) == 0:
            raise ValueError(
                f"heads must be a non-empty list of head indices (or one index, or 'all'), "
                f"got {heads!r}"
            )
        heads = unique_sorted(index_in_range(h, n_heads, "head", "this explorer") for h in heads)
        query = state.get("query")
        if query is not None:
            query = index_in_range(query, t_q, "query", "this explorer", "query positions")
        show_mask = state.get("show_mask", True)
        if not isinstance(show_mask, (bool, np.bool_)):
            raise TypeError(f"show_mask must be True or False, got {show_mask!r}")
        return {"layer": layer, "heads": heads, "query": query, "show_mask": bool(show_mask)}

    @property
    def layer(self) -> int:
        """The layer shown."""
        return self._state["layer"]

    @layer.setter
    def layer(self, value: int) -> None:
        self._update(layer=value)

    @property
    def heads(self) -> list[int]:
        """The heads shown side by side."""
        return list(self._state["heads"])

    @heads.setter
    def heads(self, value: Any) -> None:
        self._update(heads=value)

    @property
    def query(self) -> int | None:
        """The highlighted query (row), or ``None``."""
        return self._state["query"]

    @query.setter
    def query(self, value: int | None) -> None:
        self._update(query=value)

    @property
    def show_mask(self) -> bool:
        """Whether blocked cells are drawn as blocked (grey) rather than as weight 0."""
        return self._state["show_mask"]

    @show_mask.setter
    def show_mask(self, value: bool) -> None:
        self._update(show_mask=value)

    def select(
        self,
        layer: int | None = None,
        heads: Any = None,
        query: Any = _UNSET,
        show_mask: bool | None = None,
    ) -> AttentionExplorer:
        """Change several parts of the selection at once (``query=None`` clears the query); returns
        ``self``."""
        changes: dict[str, Any] = {}
        if layer is not None:
            changes["layer"] = layer
        if heads is not None:
            changes["heads"] = heads
        if query is not _UNSET:
            changes["query"] = query
        if show_mask is not None:
            changes["show_mask"] = show_mask
        self._update(**changes)
        return self

    # --- questions a learner can ask --------------------------------------------------------------
    def row(
        self, query: int | None = None, *, layer: int | None = None, head: int | None = None
    ) -> np.ndarray:
        """The weights of one query over the keys, ``[T_k]`` (defaults: the selected query, layer,
        first head)."""
        q, layer, head = self._resolve(query, layer, head)
        return self._w[layer, head, q].copy()

    def top_keys(
        self,
        query: int | None = None,
        *,
        layer: int | None = None,
        head: int | None = None,
        k: int = 3,
    ) -> list[tuple[int, str, float]]:
        """The ``k`` keys with the largest weights for one query: ``[(key index, key token, weight),
        ...]``."""
        q, layer, head = self._resolve(query, layer, head)
        return [
            (j, self.k_tokens[j], float(self._w[layer, head, q, j]))
            for j in _top(self._w[layer, head, q], k)
        ]

    def _resolve(
        self, query: int | None, layer: int | None, head: int | None
    ) -> tuple[int, int, int]:
        n_layers, n_heads, t_q, _ = self._w.shape
        q = self.query if query is None else query
        if q is None:
            raise ValueError("no query is selected: pass query= (a row index) or select one first")
        q = index_in_range(q, t_q, "query", "this explorer", "query positions")
        layer = (
            self.layer
            if layer is None
            else index_in_range(layer, n_layers, "layer", "this explorer")
        )
        head = (
            self.heads[0]
            if head is None
            else index_in_range(head, n_heads, "head", "this explorer")
        )
        return q, layer, head

    # --- static form ------------------------------------------------------------------------------
    def text(self) -> str:
        n_layers, n_heads, t_q, t_k = self._w.shape
        layer, heads, query = self.layer, self.heads, self.query
        mask = {"causal": "causal mask", "custom": "custom mask", "none": "no mask"}[self.mask_kind]
        lines = [
            f"AttentionExplorer · {_n(n_layers, 'layer')} × {_n(n_heads, 'head')} · "
            f"{_n(t_q, 'query', 'queries')} × {_n(t_k, 'key')} · {mask}"
        ]
        if self.title:
            lines.insert(0, self.title)
        plural = "s" if len(heads) > 1 else ""
        shown = f"shown: layer {layer} · head{plural} {', '.join(map(str, heads))}"
        shown += (
            f" · query {query} {self.q_tokens[query]!r}"
            if query is not None
            else " · no query selected"
        )
        lines.append(shown)
        rows = list(range(min(t_q, 12)))
        if query is not None and query not in rows:
            rows.append(query)
        q_width = max(len(short(self.q_tokens[i], 10)) for i in rows)
        for head in heads[:4]:
            lines.append(
                f"layer {layer} · head {head} · top keys of each query (index:token weight)"
            )
            for i in rows:
                row = self._w[layer, head, i]
                best = _top(row, 3)
                # skip keys that print 0.000
                keep = [j for n, j in enumerate(best) if n == 0 or row[j] >= 5e-4]
                tops = "  ".join(f"{j}:{short(self.k_tokens[j], 10)} {fmt(row[j])}" for j in keep)
                mark = "▶" if i == query else " "
                lines.append(f" {mark}{i:>3} {short(self.q_tokens[i], 10):<{q_width}} → {tops}")
            if t_q > len(rows):
                lines.append(f"     … {t_q - len(rows)} more queries")
        if len(heads) > 4:
            rest = ", ".join(map(str, heads[4:]))
            lines.append(f"(heads {rest} are shown in the picture, not listed here)")
        return "\n".join(lines)

    def figure(self) -> Any:
        """Small multiples: a heatmap per selected head (query row outlined), its row as bars."""
        from matplotlib.colors import LinearSegmentedColormap
        from matplotlib.patches import Rectangle

        n_layers, n_heads, t_q, t_k = self._w.shape
        layer, query = self.layer, self.query
        heads = self.heads[:8]
        ncols = min(len(heads), 4)
        nrows = math.ceil(len(heads) / ncols)
        cell = min(0.42, max(0.12, 3.0 / max(t_q, t_k)))
        panel_w = max(2.4, cell * t_k + 1.1)
        heat_h = max(2.2, cell * t_q + 1.0)
        bar_h = 1.5 if query is not None else 0.0
        fig = new_figure(
            ncols * panel_w + 0.9, nrows * (heat_h + bar_h) + (0.5 if self.title else 0.2)
        )
        grid = fig.add_gridspec(
            nrows * (2 if query is not None else 1),
            ncols,
            height_ratios=[heat_h, bar_h] * nrows if query is not None else None,
        )
        cmap = LinearSegmentedColormap.from_list("lessons_blues", BLUES).with_extremes(
            bad="#e6e6e6"
        )
        blocked = (~self._allowed) if (self._allowed is not None and self.show_mask) else None
        annotate = max(t_q, t_k) <= 8
        q_ticks, k_ticks = _ticks(t_q), _ticks(t_k)
        image = None
        for n, head in enumerate(heads):
            r, c = divmod(n, ncols)
            ax = fig.add_subplot(grid[r * (2 if query is not None else 1), c])
            a = self._w[layer, head]
            shown = np.ma.masked_array(a, mask=blocked) if blocked is not None else a
            image = ax.imshow(
                shown, cmap=cmap, vmin=0.0, vmax=1.0, aspect="equal", interpolation="nearest"
            )
            ax.set_title(f"layer {layer} · head {head}", fontsize=10)
            ax.set_xticks(
                k_ticks,
                [plain_label(short(self.k_tokens[j], 10)) for j in k_ticks],
                rotation=60,
                ha="right",
                rotation_mode="anchor",
                fontsize=8,
            )
            ax.set_yticks(
                q_ticks, [plain_label(short(self.q_tokens[i], 10)) for i in q_ticks], fontsize=8
            )
            ax.tick_params(length=2)
            if c == 0:
                ax.set_ylabel("query", fontsize=9)
            ax.set_xlabel("key", fontsize=9)
            if annotate:
                for i in range(t_q):
                    for j in range(t_k):
                        if blocked is not None and blocked[i, j]:
                            continue
                        ax.text(
                            j,
                            i,
                            f"{a[i, j]:.2f}",
                            ha="center",
                            va="center",
                            fontsize=7,
                            color="white" if a[i, j] > 0.55 else "#222222",
                        )
            if query is not None:
                ax.add_patch(
                    Rectangle(
                        (-0.5, query - 0.5),
                        t_k,
                        1,
                        fill=False,
                        edgecolor=HIGHLIGHT,
                        lw=2.2,
                        clip_on=False,
                    )
                )
                bx = fig.add_subplot(grid[r * 2 + 1, c])
                row = a[query]
                colors = [BLUES[6]] * t_k
                bx.bar(range(t_k), row, color=colors, width=0.8)
                if blocked is not None:
                    for j in np.flatnonzero(blocked[query]):
                        bx.axvspan(j - 0.5, j + 0.5, color="#e6e6e6", lw=0)
                bx.set_ylim(0, 1.05)
                bx.set_xlim(-0.5, t_k - 0.5)
                bx.set_xticks(
                    k_ticks,
                    [plain_label(short(self.k_tokens[j], 10)) for j in k_ticks],
                    rotation=60,
                    ha="right",
                    rotation_mode="anchor",
                    fontsize=7,
                )
                bx.tick_params(labelsize=7, length=2)
                best = _top(row, 1)[0]
                bx.set_title(
                    f"query {query} “{plain_label(short(self.q_tokens[query], 12))}”: "
                    f"top key “{plain_label(short(self.k_tokens[best], 12))}” {row[best]:.2f}",
                    fontsize=8,
                    color=HIGHLIGHT,
                )
        if image is not None:
            fig.colorbar(image, ax=fig.axes, shrink=0.7, label="attention weight", pad=0.02)
        if self.title:
            fig.suptitle(plain_label(self.title), fontsize=11)
        return fig


# --- helpers --------------------------------------------------------------------------------------
def _as_4d(weights: Any, batch_index: int | None) -> np.ndarray:
    w = float_array(weights, "attention weights", min_rank=0)
    if batch_index is not None:
        if w.ndim < 3:
            raise ValueError(
                f"batch_index={batch_index!r} was given but the weights of shape {w.shape} "
                f"have no batch axis; accepted shapes: {SHAPES}"
            )
        b = index_in_range(
            batch_index, w.shape[0], "batch_index", "the weights' batch", "sequences"
        )
        w = w[b]
    if w.ndim == 5:
        if w.shape[0] != 1:
            raise ValueError(
                f"weights of shape {w.shape} hold a batch of {w.shape[0]} sequences "
                "([batch, layers, heads, T_q, T_k]): pass batch_index= to pick one"
            )
        w = w[0]
    if w.ndim not in (2, 3, 4):
        raise ValueError(
            f"attention weights must have shape {SHAPES}; got shape {w.shape} (rank {w.ndim})"
        )
    w = w.reshape((1,) * (4 - w.ndim) + w.shape)
    if 0 in w.shape:
        raise ValueError(f"attention weights of shape {w.shape} are empty")
    if w.size > MAX_VALUES:
        raise ValueError(
            f"{w.size:,} attention weights are too many to show ({w.shape}); pick fewer layers, "
            f"heads or positions (at most {MAX_VALUES:,} values)"
        )
    return np.array(w, dtype=np.float64)


def _check_rows(w: np.ndarray, atol: float) -> None:
    def where(idx: tuple[int, ...]) -> str:
        return f"layer {idx[0]}, head {idx[1]}, query {idx[2]}"

    bad = ~np.isfinite(w)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"attention weights contain NaN or inf (first at {where(idx)}, key {idx[3]})"
        )
    if w.min() < -atol:
        idx = tuple(int(i) for i in np.unravel_index(np.argmin(w), w.shape))
        raise ValueError(
            f"attention weights must be >= 0, got {w[idx]:.4g} at {where(idx)}, key {idx[3]}: "
            "were these scores (before the softmax) rather than weights?"
        )
    sums = w.sum(axis=-1)
    off = np.abs(sums - 1.0) > atol
    if off.any():
        idx = tuple(int(i) for i in np.argwhere(off)[0])
        raise ValueError(
            "each row of attention weights must sum to 1 over the keys (the softmax is taken over "
            f"the last axis), but the row at {where(idx)} sums to {sums[idx]:.4g} "
            f"({int(off.sum())} of {off.size} rows are off by more than atol={atol:g}). "
            "Pass weights after the softmax, "
            "with keys on the last axis."
        )


def _resolve_mask(mask: Any, w: np.ndarray, atol: float) -> tuple[np.ndarray | None, str]:
    t_q, t_k = w.shape[-2:]
    if mask is None:
        if t_q == t_k and t_q > 1 and not np.triu(w, k=1).any():
            return np.tril(np.ones((t_q, t_k), dtype=bool)), "causal"
        return None, "none"
    if mask is False:
        return None, "none"
    if mask is True or (isinstance(mask, str) and mask == "causal"):
        if t_q != t_k:
            raise ValueError(f"a causal mask needs T_q == T_k, but the weights are {t_q} × {t_k}")
        allowed, kind = np.tril(np.ones((t_q, t_k), dtype=bool)), "causal"
    elif isinstance(mask, str):
        raise ValueError(
            f"mask must be None, 'causal', True/False or a [T_q, T_k] boolean array, got {mask!r}"
        )
    else:
        m = np.asarray(mask.numpy() if hasattr(mask, "numpy") else mask)
        while m.ndim > 2 and m.shape[0] == 1:
            m = m[0]
        if m.shape != (t_q, t_k):
            raise ValueError(
                f"mask must have shape [T_q, T_k] = ({t_q}, {t_k}) (True/1 = may attend), "
                f"got shape {m.shape}"
            )
        allowed, kind = bool_mask(m, "mask", "True/1 = may attend"), "custom"
    leaked = (w > atol) & ~allowed
    if leaked.any():
        layer, h, q, k = (int(i) for i in np.argwhere(leaked)[0])
        raise ValueError(
            "the weights are not 0 where the mask blocks attention: "
            f"layer {layer}, head {h}, query {q}, key {k} has weight {w[layer, h, q, k]:.4g}. "
            "True/1 in the mask means 'may attend' "
            "(did you pass the inverted mask?)"
        )
    return allowed, kind


def _top(row: np.ndarray, k: int) -> list[int]:
    """Indices of the ``k`` largest entries, largest first; ties go to the smaller index
    (deterministic)."""
    order = sorted(range(len(row)), key=lambda j: (-round(float(row[j]), 12), j))
    return order[:k]


def _ticks(n: int) -> list[int]:
    step = 1 if n <= 24 else math.ceil(n / 16)
    return list(range(0, n, step))


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _lookup(vocab: Any, i: int) -> str:
    if vocab is None:
        return str(i)
    if callable(vocab):
        return str(vocab(i))
    return str(vocab[i])


def _batched_float(x: Any, name: str) -> np.ndarray:
    a = float_array(x, name, min_rank=2)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"{name} must be [batch, T, d_model] or [T, d_model], got shape {a.shape}")
    return a.astype("float32")
