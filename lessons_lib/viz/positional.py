"""The positional-encoding explorer: the sinusoids of chosen dimensions, and dot product against
distance.

Used in lesson 03 §3. The sinusoidal encoding (Vaswani et al., 2017, sec. 3.5; derived in lesson 03
§2, `lessons_lib.sinusoidal_positional_encoding`) is

    PE_{p, 2i} = sin(p ωᵢ),     PE_{p, 2i+1} = cos(p ωᵢ),     ωᵢ = base^(−2i / d_model),

so dimension pair i is a wave of wavelength 2π / ωᵢ, from 2π (i = 0) up to 2π · base^((d_model − 2)
/ d_model) for the last pair, which approaches 2π · base as d_model grows. The dot product of two
encodings depends only on their distance k = q − p (lesson 03 §3):

    PE_p · PE_{p+k} = ∑ᵢ (sin(p ωᵢ) sin((p + k) ωᵢ) + cos(p ωᵢ) cos((p + k) ωᵢ))
                    = ∑_{i=0}^{d_model/2 − 1} cos(k ωᵢ),

which is d_model / 2 at k = 0 and (mostly) decreases as |k| grows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lessons_lib.positional import frequencies, sinusoidal_positional_encoding
from lessons_lib.viz._base import (
    HIGHLIGHT,
    PALETTE,
    View,
    fmt,
    index_in_range,
    new_figure,
    to_float32_bytes,
    unique_sorted,
)

MAX_VALUES = 131_072  # max_len * d_model sent to the browser
MAX_DIMS = len(PALETTE)  # waves drawn at once


class PositionalExplorer(View):
    """Choose dimensions and positions of the sinusoidal encoding; see the waves and dot product vs
    distance.

    Lesson 03 §3 shows it live.

    Args:
        max_len: number of positions ``0 .. max_len-1``.
        d_model: encoding width (even).
        dims: the dimensions whose waves are drawn (at most 10; even = sine, odd = cosine). Default:
            the sines of the first four frequencies that exist, ``(0, 2, 4, 6)``.
        reference: the reference position ``p``; the curve shows ``PE[p] · PE[q]`` against ``q -
            p``.
        position: the compared position ``q`` (default ``min(p + 4, max_len - 1)``).
        base: the base of the frequencies (10000 in the paper).
        title: a title for the view.
    """

    kind = "positional"

    def __init__(
        self,
        max_len: int = 32,
        d_model: int = 16,
        *,
        dims: Any = None,
        reference: int = 0,
        position: int | None = None,
        base: float = 10000.0,
        title: str | None = None,
    ):
        super().__init__()
        self._pe = sinusoidal_positional_encoding(
            max_len, d_model, base
        )  # validates max_len, d_model
        self._pe.setflags(write=False)
        if self._pe.size > MAX_VALUES:
            raise ValueError(
                f"max_len * d_model = {self._pe.size:,} is too large to show; keep it at most "
                f"{MAX_VALUES:,} (e.g. max_len=256, d_model=512)"
            )
        self.max_len, self.d_model, self.base = int(max_len), int(d_model), float(base)
        self.omegas = frequencies(d_model, base)
        self.title = "" if title is None else str(title)
        if dims is None:
            dims = [d for d in (0, 2, 4, 6) if d < d_model]
        if position is None:
            ref = reference if isinstance(reference, (int, np.integer)) else 0
            position = min(int(ref) + 4, self.max_len - 1)
        self._state = self._checked_state(
            {"dims": dims, "reference": reference, "position": position}
        )

    @property
    def encodings(self) -> np.ndarray:
        """The ``[max_len, d_model]`` encoding matrix (read-only)."""
        return self._pe

    def _spec(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "max_len": self.max_len,
            "d_model": self.d_model,
            "base": self.base,
            "max_dims": MAX_DIMS,
        }

    def _values(self) -> bytes:
        return to_float32_bytes(self._pe)

    def _checked_state(self, state: dict[str, Any]) -> dict[str, Any]:
        dims = state.get("dims")
        if isinstance(dims, (int, np.integer)) and not isinstance(dims, bool):
            dims = [dims]
        if not isinstance(dims, (list, tuple, np.ndarray)) or len(dims) == 0:
            raise ValueError(f"dims must be a non-empty list of dimension indices, got {dims!r}")
        dims = unique_sorted(
            index_in_range(d, self.d_model, "dimension", "this encoding") for d in dims
        )
        if len(dims) > MAX_DIMS:
            raise ValueError(f"choose at most {MAX_DIMS} dimensions to draw, got {len(dims)}")
        reference = index_in_range(
            state.get("reference", 0), self.max_len, "reference", "this encoding", "positions"
        )
        position = index_in_range(
            state.get("position", 0), self.max_len, "position", "this encoding", "positions"
        )
        return {"dims": dims, "reference": reference, "position": position}

    @property
    def dims(self) -> list[int]:
        return list(self._state["dims"])

    @dims.setter
    def dims(self, value: Any) -> None:
        self._update(dims=value)

    @property
    def reference(self) -> int:
        return self._state["reference"]

    @reference.setter
    def reference(self, value: int) -> None:
        self._update(reference=value)

    @property
    def position(self) -> int:
        return self._state["position"]

    @position.setter
    def position(self, value: int) -> None:
        self._update(position=value)

    def select(
        self, dims: Any = None, reference: int | None = None, position: int | None = None
    ) -> PositionalExplorer:
        """Change several settings at once; returns ``self``."""
        changes = {
            k: v
            for k, v in (("dims", dims), ("reference", reference), ("position", position))
            if v is not None
        }
        self._update(**changes)
        return self

    # --- numbers ----------------------------------------------------------------------------------
    def dot_products(self, reference: int | None = None) -> np.ndarray:
        """``PE[reference] · PE[q]`` for every position ``q`` (``[max_len]``)."""
        ref = (
            self.reference
            if reference is None
            else index_in_range(reference, self.max_len, "reference", "this encoding", "positions")
        )
        return self._pe @ self._pe[ref]

    def wavelength(self, dim: int) -> float:
        """Wavelength 2π / ωᵢ (in positions) of dimension ``dim`` (pair ``i = dim // 2``; lesson 03
        §2)."""
        dim = index_in_range(dim, self.d_model, "dimension", "this encoding")
        return float(2 * np.pi / self.omegas[dim // 2])

    def _describe_dim(self, d: int) -> str:
        return (
            f"{d} ({'sin' if d % 2 == 0 else 'cos'}, ω = {self.omegas[d // 2]:.4g}, wavelength "
            f"{self.wavelength(d):.4g})"
        )

    # --- static form ------------------------------------------------------------------------------
    def text(self) -> str:
        ref, pos = self.reference, self.position
        dots = self.dot_products(ref)
        lines = [
            f"PositionalExplorer · {self.max_len} positions × {self.d_model} dimensions · "
            f"base {self.base:g}"
        ]
        if self.title:
            lines.insert(0, self.title)
        lines.append("dimensions: " + "; ".join(self._describe_dim(d) for d in self.dims))
        lines.append(f"reference {ref} · position {pos} · distance {pos - ref}")
        values = ", ".join(
            f"PE[{ref},{d}] = {fmt(self._pe[ref, d])} / PE[{pos},{d}] = {fmt(self._pe[pos, d])}"
            for d in self.dims[:4]
        )
        lines.append(f"values: {values}")
        lines.append(
            f"PE[{ref}]·PE[{pos}] = {fmt(dots[pos])}   "
            f"(PE[p]·PE[p] = d_model/2 = {fmt(self.d_model / 2)} for every p)"
        )
        ks = [k for k in range(0, 9) if ref + k < self.max_len]
        lines.append(
            f"PE[{ref}]·PE[{ref}+k], k = {ks[0]}..{ks[-1]}: "
            + " ".join(fmt(dots[ref + k], 2) for k in ks)
        )
        return "\n".join(lines)

    def figure(self) -> Any:
        """Left: the waves of the chosen dimensions; right: ``PE[reference] · PE[q]`` against ``q -
        reference``."""
        ref, pos = self.reference, self.position
        fig = new_figure(10.0, 3.2)
        ax, dx = fig.subplots(1, 2, width_ratios=[1.25, 1.0])
        p = np.arange(self.max_len)
        for n, d in enumerate(self.dims):
            ax.plot(
                p,
                self._pe[:, d],
                color=PALETTE[n],
                lw=1.5,
                marker="o" if self.max_len <= 24 else None,
                ms=3,
                label=f"dim {d} ({'sin' if d % 2 == 0 else 'cos'}, λ = {self.wavelength(d):.3g})",
            )
        ax.axvline(ref, color="#333333", lw=1.0)
        ax.axvline(pos, color=HIGHLIGHT, lw=1.2, ls="--")
        ax.set_ylim(-1.15, 1.6)
        ax.set_xlabel("position", fontsize=9)
        ax.set_ylabel("PE value", fontsize=9)
        ax.set_title(
            f"waves of the chosen dimensions (reference {ref}, position {pos})", fontsize=9
        )
        ax.legend(fontsize=7, ncol=2, loc="upper right", frameon=False)

        dots = self.dot_products(ref)
        dist = p - ref
        dx.plot(
            dist, dots, color="#2171b5", lw=1.5, marker="o" if self.max_len <= 24 else None, ms=3
        )
        dx.plot([pos - ref], [dots[pos]], "o", color=HIGHLIGHT, ms=7)
        dx.annotate(
            f"{fmt(dots[pos], 2)}",
            (pos - ref, dots[pos]),
            textcoords="offset points",
            xytext=(6, 6),
            fontsize=8,
            color=HIGHLIGHT,
        )
        dx.axhline(0, color="#bbbbbb", lw=0.8)
        dx.set_xlim(-(self.max_len - 1) - 0.5, self.max_len - 0.5)
        dx.set_ylim(-self.d_model / 2 * 1.08, self.d_model / 2 * 1.12)
        dx.set_xlabel(f"distance q − {ref}", fontsize=9)
        dx.set_ylabel(f"PE[{ref}] · PE[q]", fontsize=9)
        dx.set_title("dot product vs distance (depends on |q − p| only)", fontsize=9)
        for a in (ax, dx):
            a.tick_params(labelsize=7)
        if self.title:
            fig.suptitle(self.title, fontsize=11)
        return fig
