"""Shared machinery of the course's views: one object, two forms.

Every view (`AttentionExplorer`, `SoftmaxExplorer`,
`PositionalExplorer`) is a plain Python object that holds validated NumPy
data and a small *selection* (which layer, which heads, which temperature, ...). From that it
produces

* a **static form**: a deterministic ``text/plain`` summary (`View.text`) and a PNG drawn with
  matplotlib (`View.figure`, `View.to_png`). This is what ``nbconvert``, GitHub and
  ``nbval`` see;
* a **live form**: `View.widget`, an ``anywidget`` whose front end is the ES module
  ``lessons_lib/static/viz.js`` shipped inside the package (plain DOM + SVG, no CDN, nothing fetched
  at run time). All the numbers travel to the browser once, so hovering, clicking and dragging
  sliders redraw without a kernel round trip. The selection is synced both ways: set it from Python
  (``view.select(...)``) or in the browser, and `View.to_png` draws whatever is selected now.

Displaying a view (``display(view)`` or a view as the last expression of a cell) sends one output
holding all three MIME types: ``application/vnd.jupyter.widget-view+json`` (JupyterLab, Notebook 7
and VS Code render the live view), ``image/png`` and ``text/plain`` (everything else renders those).
``view.static()`` returns a static-only object.

The views appear in lesson 03 §3 (positions), lesson 04 §3 and §6 (softmax and scale), lesson 05 §4
and §8, lesson 08 §7 and lesson 09 §7 (attention).
"""

from __future__ import annotations

import base64
import io
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import anywidget
import numpy as np
import traitlets

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
ESM_PATH = STATIC_DIR / "viz.js"
CSS_PATH = STATIC_DIR / "viz.css"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

# matplotlib's 'Blues' (ColorBrewer); viz.js interpolates the same nine colours, so PNG and live
# view agree.
BLUES = (
    "#f7fbff",
    "#deebf7",
    "#c6dbef",
    "#9ecae1",
    "#6baed6",
    "#4292c6",
    "#2171b5",
    "#08519c",
    "#08306b",
)
HIGHLIGHT = "#e8590c"  # the selected query row / marker, in both forms
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


class LessonsView(anywidget.AnyWidget):
    """The live form of every ``lessons_lib.viz`` view: one widget class, three front-end renderers.

    Traits (all synced with the browser):
        kind: ``"attention"``, ``"softmax"`` or ``"positional"`` (which renderer of ``viz.js`` draws
            it).
        spec: JSON-able data that never changes (tokens, labels, sizes, title).
        values: a float32 little-endian array as bytes (attention weights, positional encodings),
            sent as one binary buffer rather than JSON.
        state: the selection, e.g. ``{"layer": 0, "heads": [0, 1], "query": 2, "show_mask": True}``.
    """

    _esm = ESM_PATH
    _css = CSS_PATH
    kind = traitlets.Unicode("").tag(sync=True)
    spec = traitlets.Dict().tag(sync=True)
    values = traitlets.Bytes(b"").tag(sync=True)
    state = traitlets.Dict().tag(sync=True)


def to_float32_bytes(a: np.ndarray) -> bytes:
    """Row-major float32 little-endian bytes of ``a``, read by ``viz.js`` as a ``Float32Array``."""
    return np.ascontiguousarray(a, dtype="<f4").tobytes()


def figure_to_png(fig: Any, dpi: int = 100) -> bytes:
    """Render a matplotlib ``Figure`` to PNG bytes without pyplot (no global state, nothing shown
    twice)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # a token outside DejaVu Sans (e.g. CJK) would warn "Glyph ... missing" on stderr; the box
        # drawn is fine
        warnings.simplefilter("ignore", UserWarning)
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None}, facecolor="white")
    return buf.getvalue()


def new_figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` not registered with pyplot (so the inline backend never shows it by
    itself)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def plain_label(text: str) -> str:
    """A token as matplotlib should print it: ``$`` escaped (no mathtext), newlines visible."""
    return text.replace("\\", "\\\\").replace("$", r"\$").replace("\n", "\\n").replace("\t", "\\t")


def short(text: str, width: int = 12) -> str:
    """Truncate a label for axes and readouts (``"extraordinary" -> "extraordina…"``)."""
    return text if len(text) <= width else text[: width - 1] + "…"


def fmt(x: float, decimals: int = 3) -> str:
    """Fixed-point number without a negative zero (``-0.0001 -> "0.000"``): deterministic text."""
    s = f"{x:.{decimals}f}"
    return s[1:] if s.startswith("-") and float(s) == 0 else s


def as_tokens(tokens: Any, name: str) -> list[str]:
    """Tokens as a list of strings: a sequence of str/int, or one string split on whitespace."""
    if isinstance(tokens, str):
        out = tokens.split()
    else:
        if hasattr(tokens, "numpy") and not isinstance(tokens, np.ndarray):
            tokens = tokens.numpy()
        if isinstance(tokens, np.ndarray):
            if tokens.ndim != 1:
                raise ValueError(
                    f"{name} must be a 1-D sequence of tokens, got an array of shape {tokens.shape}"
                )
            tokens = tokens.tolist()
        if not isinstance(tokens, Iterable):
            raise TypeError(
                f"{name} must be a list of strings (or one string to split on spaces), "
                f"got {type(tokens).__name__}"
            )
        out = []
        for t in tokens:
            if isinstance(t, bytes):
                t = t.decode("utf-8", "replace")
            if not isinstance(t, (str, int, np.integer)) or isinstance(t, bool):
                raise TypeError(
                    f"{name} must hold strings (or integer ids), got an item {t!r} "
                    f"of type {type(t).__name__}"
                )
            out.append(str(t))
    if not out:
        raise ValueError(f"{name} is empty: give one token per position")
    return out


def index_in_range(value: Any, size: int, what: str, owner: str, plural: str | None = None) -> int:
    """Check a layer/head/query/row index: an ``int`` in ``0 .. size-1`` (negative indices are
    refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an integer index, got {value!r} ({type(value).__name__})")
    if not 0 <= value < size:
        plural = plural or what + "s"
        raise ValueError(
            f"{what} {value} is out of range: {owner} has {size} {plural} (valid: 0..{size - 1})"
        )
    return int(value)


class StaticView:
    """The static form of a view: ``text/plain`` and ``image/png`` only (what ``nbconvert`` and
    GitHub show).

    Attributes:
        text: the deterministic text summary.
        png: the PNG bytes.
    """

    def __init__(self, text: str, png: bytes):
        self.text = text
        self.png = png

    def __repr__(self) -> str:
        return self.text

    def _repr_png_(self) -> bytes:
        return self.png

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return _filter(
            {"text/plain": self.text, "image/png": base64.b64encode(self.png).decode("ascii")},
            include,
            exclude,
        )

    def save(self, path: str | Path) -> Path:
        """Write the PNG to ``path`` and return it."""
        path = Path(path)
        path.write_bytes(self.png)
        return path


def _filter(data: dict[str, Any], include: Any, exclude: Any) -> dict[str, Any]:
    if include:
        data = {k: v for k, v in data.items() if k in include}
    if exclude:
        data = {k: v for k, v in data.items() if k not in exclude}
    return data


class View:
    """Base class of the views: validated data + a selection, drawn statically (text, PNG) and live
    (widget)."""

    kind: ClassVar[str] = ""

    def __init__(self) -> None:
        self._state: dict[str, Any] = {}
        self._widget: LessonsView | None = None

    # --- to be provided by each view --------------------------------------------------------------
    def _spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def _values(self) -> bytes:
        return b""

    def _checked_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """Validate and normalise a complete selection (raise ValueError/TypeError with a clear
        message)."""
        raise NotImplementedError

    def figure(self) -> Any:
        """The static picture of the current selection, as a matplotlib ``Figure``."""
        raise NotImplementedError

    def text(self) -> str:
        """The deterministic ``text/plain`` summary of the current selection."""
        raise NotImplementedError

    # --- shared -----------------------------------------------------------------------------------
    @property
    def state(self) -> dict[str, Any]:
        """A copy of the current selection (the same dict the browser sees)."""
        return dict(self._state)

    def _update(self, **changes: Any) -> None:
        new = self._checked_state({**self._state, **changes})
        self._state = new
        if self._widget is not None:
            self._widget.state = _jsonable(new)

    @property
    def widget(self) -> LessonsView:
        """The live view (created on first use; displaying the view creates it)."""
        if self._widget is None:
            w = LessonsView(
                kind=self.kind,
                spec=self._spec(),
                values=self._values(),
                state=_jsonable(self._state),
            )
            w.observe(self._from_browser, names="state")
            self._widget = w
        return self._widget

    def _from_browser(self, change: dict[str, Any]) -> None:
        try:
            self._state = self._checked_state(dict(change["new"]))
        except (TypeError, ValueError):  # not expected from viz.js; keep the last valid selection
            pass

    def to_png(self, dpi: int = 100) -> bytes:
        """The static picture as PNG bytes."""
        return figure_to_png(self.figure(), dpi=dpi)

    def static(self) -> StaticView:
        """A static-only copy (text + PNG) of the current selection, e.g. for documents converted to
        HTML."""
        return StaticView(self.text(), self.to_png())

    def save_png(self, path: str | Path, dpi: int = 100) -> Path:
        """Write the static picture to ``path``."""
        path = Path(path)
        path.write_bytes(self.to_png(dpi=dpi))
        return path

    def __repr__(self) -> str:
        return self.text()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        data = {
            "text/plain": self.text(),
            "image/png": base64.b64encode(self.to_png()).decode("ascii"),
        }
        bundle = self.widget._repr_mimebundle_()
        if bundle is not None:
            widget_data = bundle[0] if isinstance(bundle, tuple) else bundle
            if WIDGET_MIME in widget_data:
                data[WIDGET_MIME] = widget_data[WIDGET_MIME]
        return _filter(data, include, exclude)


def _jsonable(obj: Any) -> Any:
    """NumPy scalars/tuples -> plain JSON types (the widget state travels as JSON)."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def unique_sorted(values: Sequence[Any]) -> list[Any]:
    """Sorted, duplicates removed (selections of heads and dimensions)."""
    return sorted(set(values))
