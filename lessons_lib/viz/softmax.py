"""The softmax and scale explorer: what temperature and the 1/√d_k scaling do to one row of scores.

Used in lesson 04 §3 (why divide by √d_k) and §6 (the source article's example). For a row of scores
s ∈ ℝⁿ, a temperature τ > 0 and a head size d_k,

    p = softmax(s / (τ √d_k)),     H(p) = −∑ᵢ pᵢ log pᵢ ∈ [0, log n] (nats),
    ‖∂p/∂s′‖_F = ‖diag(p) − p pᵀ‖_F

where s′ = s / (τ √d_k) are the logits. Large logits make p one-hot (*saturation*): H → 0 and the
Jacobian, hence the gradient that reaches the scores, vanishes (lesson 04 §3). Dividing by √d_k or
raising τ spreads the weights again. The source article's worked example has scores in the hundreds
and thousands: `SoftmaxExplorer` shows its rows are exactly one-hot (lesson 04 §6).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lessons_lib._validate import describe
from lessons_lib.viz._base import (
    BLUES,
    HIGHLIGHT,
    View,
    fmt,
    index_in_range,
    new_figure,
    plain_label,
    short,
)

TEMPERATURE_RANGE = (0.01, 100.0)
DK_CHOICES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
SATURATED = 0.99  # top weight at or above which the view says "saturated"
MAX_KEYS = 64
MAX_ROWS = 64


def scaled_softmax(
    scores: Any, temperature: float = 1.0, d_k: int = 1, scale: bool = True
) -> np.ndarray:
    """softmax(scores / (τ √d_k)) over the last axis, τ = ``temperature`` (√d_k only if ``scale``).

    The distribution `SoftmaxExplorer` shows (lesson 04 §3).
    """
    s = _scores_array(scores, min_rank=1)
    t = _temperature(temperature)
    d = _dk(d_k)
    z = s / (t * (math.sqrt(d) if scale else 1.0))
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def entropy(p: Any, axis: int = -1) -> np.ndarray | float:
    """Shannon entropy in nats, H(p) = −∑ᵢ pᵢ log pᵢ (with 0 · log 0 = 0), over ``axis`` (lesson 04
    §3)."""
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    h = terms.sum(axis=axis)
    return float(h) if np.ndim(h) == 0 else h


def softmax_jacobian_norm(p: Any) -> float:
    """Frobenius norm ‖diag(p) − p pᵀ‖_F of the softmax Jacobian for one distribution ``p`` (lesson
    04 §3)."""
    p = np.asarray(p, dtype=np.float64)
    return float(np.linalg.norm(np.diag(p) - np.outer(p, p)))


class SoftmaxExplorer(View):
    """Sliders for the temperature and the 1/√d_k scaling of one row of scores (lesson 04 §3, §6).

    The live view shows the weights as bars, the logits, the entropy (and its maximum log n), the
    top weight, the effective number of keys e^H and the size of the softmax's Jacobian, and a curve
    of the entropy against the temperature; everything is recomputed in the browser as the sliders
    move.

    Args:
        scores: one row of raw scores ``[n]`` (e.g. q · k_j for every key ``j``), or several rows
            ``[rows, n]`` to choose from (e.g. a whole Q Kᵀ). Integers are fine.
        labels: a name per key (default ``"key 0"``, ``"key 1"`` ...).
        d_k: the head size whose square root divides the scores (the slider offers powers of 2 and
            this value).
        scale: divide by √d_k (the checkbox); ``False`` shows the unscaled softmax.
        temperature: τ in ``[0.01, 100]``; 1 is the plain softmax.
        row: which row of a 2-D ``scores`` to show first.
        row_labels: a name per row (default ``"row 0"`` ...).
        title: a title for the view.

    Example (the source article's worked example, section 4.3)::

        Q = np.array([[0, 7, 18], [15, 31, 51], [36, 59, 82]])
        SoftmaxExplorer(Q @ Q.T, d_k=3)        # every row one-hot: H = 0, "saturated"
    """

    kind = "softmax"

    def __init__(
        self,
        scores: Any,
        labels: Any = None,
        *,
        d_k: int = 1,
        scale: bool = True,
        temperature: float = 1.0,
        row: int = 0,
        row_labels: Any = None,
        title: str | None = None,
    ):
        super().__init__()
        s = _scores_array(scores, min_rank=1)
        if s.ndim == 1:
            s = s[None]
        if s.ndim != 2:
            raise ValueError(f"scores must be one row [n] or rows [rows, n], got shape {s.shape}")
        if s.shape[1] < 2:
            raise ValueError(
                f"a softmax over fewer than 2 scores is always [1.0]; got shape {s.shape}"
            )
        if s.shape[1] > MAX_KEYS or s.shape[0] > MAX_ROWS:
            raise ValueError(
                f"scores of shape {s.shape} are too many to show: at most {MAX_ROWS} rows of "
                f"{MAX_KEYS} keys"
            )
        self._scores = s
        self._scores.setflags(write=False)
        n = s.shape[1]
        self.labels = _names(labels, n, "key", "labels")
        self.row_labels = _names(row_labels, s.shape[0], "row", "row_labels")
        d_k = _dk(d_k)
        self.dk_choices = sorted(set(DK_CHOICES) | {d_k})
        self.title = "" if title is None else str(title)
        self._state = self._checked_state(
            {"row": row, "d_k": d_k, "scale": scale, "temperature": temperature}
        )

    @property
    def scores(self) -> np.ndarray:
        """All rows of scores, ``[rows, n]`` (read-only)."""
        return self._scores

    def _spec(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "rows": self._scores.tolist(),
            "labels": self.labels,
            "row_labels": self.row_labels,
            "dk_choices": self.dk_choices,
            "t_min": TEMPERATURE_RANGE[0],
            "t_max": TEMPERATURE_RANGE[1],
            "saturated": SATURATED,
        }

    def _checked_state(self, state: dict[str, Any]) -> dict[str, Any]:
        row = index_in_range(state.get("row", 0), self._scores.shape[0], "row", "these scores")
        d_k = _dk(state.get("d_k", 1))
        if d_k not in self.dk_choices:
            self.dk_choices = sorted(set(self.dk_choices) | {d_k})
            if self._widget is not None:
                self._widget.spec = self._spec()
        scale = state.get("scale", True)
        if not isinstance(scale, (bool, np.bool_)):
            raise TypeError(f"scale must be True or False, got {scale!r}")
        return {
            "row": row,
            "d_k": d_k,
            "scale": bool(scale),
            "temperature": _temperature(state.get("temperature")),
        }

    # --- selection --------------------------------------------------------------------------------
    @property
    def temperature(self) -> float:
        return self._state["temperature"]

    @temperature.setter
    def temperature(self, value: float) -> None:
        self._update(temperature=value)

    @property
    def d_k(self) -> int:
        return self._state["d_k"]

    @d_k.setter
    def d_k(self, value: int) -> None:
        self._update(d_k=value)

    @property
    def scale(self) -> bool:
        return self._state["scale"]

    @scale.setter
    def scale(self, value: bool) -> None:
        self._update(scale=value)

    @property
    def row(self) -> int:
        return self._state["row"]

    @row.setter
    def row(self, value: int) -> None:
        self._update(row=value)

    def select(
        self,
        temperature: float | None = None,
        d_k: int | None = None,
        scale: bool | None = None,
        row: int | None = None,
    ) -> SoftmaxExplorer:
        """Change several settings at once; returns ``self``."""
        changes = {
            k: v
            for k, v in (("temperature", temperature), ("d_k", d_k), ("scale", scale), ("row", row))
            if v is not None
        }
        self._update(**changes)
        return self

    # --- numbers ----------------------------------------------------------------------------------
    @property
    def divisor(self) -> float:
        """τ √d_k (or τ without scaling): what the scores are divided by."""
        return self.temperature * (math.sqrt(self.d_k) if self.scale else 1.0)

    def logits(self) -> np.ndarray:
        """The current row divided by `divisor`."""
        return self._scores[self.row] / self.divisor

    def distribution(self) -> np.ndarray:
        """The softmax of the current row with the current settings."""
        return scaled_softmax(self._scores[self.row], self.temperature, self.d_k, self.scale)

    def entropy(self) -> float:
        """Entropy of `distribution` in nats (0 = one-hot, ``log n`` = uniform)."""
        return float(entropy(self.distribution()))

    def is_saturated(self) -> bool:
        """Whether the top weight is at least 0.99 (one key takes (almost) everything)."""
        return bool(self.distribution().max() >= SATURATED)

    # --- static form ------------------------------------------------------------------------------
    def text(self) -> str:
        s, z, p = self._scores[self.row], self.logits(), self.distribution()
        n = len(p)
        h = entropy(p)
        scaling = (
            f"d_k = {self.d_k}, divided by √d_k = {fmt(math.sqrt(self.d_k))}"
            if self.scale
            else f"d_k = {self.d_k}, not scaled"
        )
        lines = [
            f"SoftmaxExplorer · {self.row_labels[self.row]} "
            f"({self.row + 1} of {self._scores.shape[0]}) · "
            f"{n} keys · {scaling} · temperature {fmt(self.temperature)}"
        ]
        if self.title:
            lines.insert(0, self.title)
        cols = list(range(min(n, 12)))
        width = max(
            9,
            *(len(short(self.labels[j], 10)) + 1 for j in cols),
            *(len(fmt(v)) + 1 for v in (*s[cols], *z[cols])),
        )
        head = "τ·√d_k" if self.scale else "τ"
        for name, values in (
            ("", None),
            ("scores", s),
            (f"logits = scores / {head}", z),
            ("weights", p),
        ):
            cells = (
                "".join(f"{short(self.labels[j], 10):>{width}}" for j in cols)
                if values is None
                else "".join(f"{fmt(values[j]):>{width}}" for j in cols)
            )
            lines.append(f"{name:<24}{cells}" + (" …" if n > len(cols) else ""))
        lines.append(
            f"entropy {fmt(h)} nats (max log {n} = {fmt(math.log(n))}) · "
            f"top weight {fmt(p.max())} · effective keys e^H = {fmt(math.exp(h), 2)} · "
            f"‖diag(p) − ppᵀ‖ = {fmt(softmax_jacobian_norm(p))}"
        )
        if p.max() >= SATURATED:
            lines.append(
                "saturated: one key takes (almost) all the weight, and the gradient through the "
                "softmax (nearly) vanishes"
            )
        return "\n".join(lines)

    def figure(self) -> Any:
        """Left: the weights as bars; right: entropy against temperature, the setting marked."""
        p = self.distribution()
        n = len(p)
        fig = new_figure(max(7.0, 4.2 + 0.35 * n), 3.0)
        ax, cx = fig.subplots(1, 2, width_ratios=[max(1.0, n / 6), 1.0])
        colors = [BLUES[7] if v >= SATURATED else BLUES[5] for v in p]
        bars = ax.bar(range(n), p, color=colors)
        if n <= 16:
            ax.bar_label(bars, labels=[fmt(v, 2) for v in p], fontsize=7, padding=1)
        ax.axhline(1 / n, color="#888888", lw=0.8, ls="--")
        ax.annotate(
            "uniform",
            xy=(1, 1 / n),
            xycoords=("axes fraction", "data"),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
            color="#666666",
        )
        ax.set_ylim(0, 1.12)
        ax.set_xticks(
            range(n),
            [plain_label(short(label, 10)) for label in self.labels],
            rotation=45 if n > 6 else 0,
            ha="right" if n > 6 else "center",
            fontsize=8,
        )
        scaled = (
            f"τ·√d_k = {fmt(self.temperature, 2)}·{fmt(math.sqrt(self.d_k), 2)}"
            if self.scale
            else f"τ = {fmt(self.temperature, 2)}, no √d_k"
        )
        ax.set_title(f"softmax(scores / {'τ·√d_k' if self.scale else 'τ'})  ({scaled})", fontsize=9)
        ax.set_ylabel("weight", fontsize=9)
        h = entropy(p)
        status = "  — saturated" if p.max() >= SATURATED else ""
        ax.set_xlabel(
            f"entropy H = {fmt(h)} nats of max {fmt(math.log(n))}{status}",
            fontsize=9,
            color=HIGHLIGHT if status else "#333333",
        )

        temps = np.logspace(math.log10(TEMPERATURE_RANGE[0]), math.log10(TEMPERATURE_RANGE[1]), 161)
        s = self._scores[self.row]
        curve = [entropy(scaled_softmax(s, t, self.d_k, self.scale)) for t in temps]
        cx.plot(
            temps,
            curve,
            color=BLUES[6],
            lw=1.6,
            label="with √d_k" if self.scale and self.d_k > 1 else None,
        )
        if self.scale and self.d_k > 1:
            raw = [entropy(scaled_softmax(s, t, 1, False)) for t in temps]
            cx.plot(temps, raw, color="#999999", lw=1.0, ls=":", label="without")
            cx.legend(fontsize=7, loc="best")
        cx.axhline(math.log(n), color="#888888", lw=0.8, ls="--")
        cx.plot([self.temperature], [h], "o", color=HIGHLIGHT, ms=6)
        cx.set_xscale("log")
        cx.set_ylim(-0.05 * math.log(n), 1.08 * math.log(n))
        cx.set_xlabel("temperature τ", fontsize=9)
        cx.set_ylabel("entropy (nats)", fontsize=9)
        cx.set_title("entropy vs temperature", fontsize=9)
        for a in (ax, cx):
            a.tick_params(labelsize=7)
        if self.title:
            fig.suptitle(plain_label(self.title), fontsize=11)
        return fig


def _scores_array(scores: Any, min_rank: int) -> np.ndarray:
    if hasattr(scores, "numpy") and not isinstance(scores, np.ndarray):
        scores = scores.numpy()
    s = np.asarray(scores)
    if s.dtype == bool or not (
        np.issubdtype(s.dtype, np.floating) or np.issubdtype(s.dtype, np.integer)
    ):
        raise TypeError(f"scores must be numbers, got {describe(s)}")
    if s.ndim < min_rank:
        raise ValueError(f"scores must be one row [n] or rows [rows, n], got shape {s.shape}")
    s = s.astype(np.float64)
    if not np.isfinite(s).all():
        raise ValueError(
            "scores must be finite (no NaN or inf); mask keys by leaving them out instead"
        )
    return s


def _temperature(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"temperature must be a number, got {value!r}")
    t = float(value)
    lo, hi = TEMPERATURE_RANGE
    if not lo <= t <= hi:
        raise ValueError(f"temperature must be in [{lo:g}, {hi:g}], got {value!r}")
    return t


def _dk(value: Any) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or not 1 <= value <= 65536
    ):
        raise ValueError(f"d_k must be a positive integer (at most 65536), got {value!r}")
    return int(value)


def _names(names: Any, n: int, word: str, arg: str) -> list[str]:
    if names is None:
        return [f"{word} {i}" for i in range(n)]
    out = [str(x) for x in (names.split() if isinstance(names, str) else names)]
    if len(out) != n:
        raise ValueError(f"{arg} has {len(out)} items but there are {n} {word}s")
    return out
