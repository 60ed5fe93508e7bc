"""Interactive views for the lessons that also work offline and in static renderings.

Three views, each a plain Python object with a *static* and a *live* form (see
`lessons_lib.viz._base`):

* `AttentionExplorer` — attention weights ``[layers, heads, T_q, T_k]``: pick a layer and
  heads (shown side by side), hover or click a query token to see the keys it attends to, toggle the
  mask. ``AttentionExplorer.from_model(gpt, ids)`` runs a ``lessons_lib`` model for you. Lessons 05
  §4 and §8, 08 §7, 09 §7.
* `SoftmaxExplorer` — one row of scores with sliders for the temperature and the 1/√d_k
  scaling: the distribution, its entropy, and when it saturates. Lesson 04 §3 and §6.
* `PositionalExplorer` — the sinusoidal positional encoding: waves of chosen dimensions and
  the dot product of two positions against their distance. Lesson 03 §3.

Show a view by making it the last expression of a cell (or ``display(view)``). JupyterLab 4 and
Notebook 7 (both driven in ``tests/test_browser.py``) render the live view, an ``anywidget`` whose
JavaScript ships inside this package (``lessons_lib/static/viz.js``; no CDN, nothing fetched, no
kernel round trip on hover/click/slide). ``nbconvert``, GitHub and ``nbval`` get the same output's
``image/png`` (matplotlib) and deterministic ``text/plain``. ``view.static()`` gives the static form
alone, ``view.to_png()`` / ``view.figure()`` the picture, ``view.text()`` the text.

Notebook cells that display a live view are tagged ``nbval-ignore-output`` (the widget's model id
differs on every run); assert on the numbers instead (``view.top_keys(...)``, ``view.entropy()``,
``view.dot_products()``).
"""

from lessons_lib.viz._base import LessonsView, StaticView, View
from lessons_lib.viz.attention import AttentionExplorer
from lessons_lib.viz.positional import PositionalExplorer
from lessons_lib.viz.softmax import SoftmaxExplorer, entropy, scaled_softmax, softmax_jacobian_norm

__all__ = [
    "AttentionExplorer",
    "SoftmaxExplorer",
    "PositionalExplorer",
    "StaticView",
    "View",
    "LessonsView",
    "scaled_softmax",
    "entropy",
    "softmax_jacobian_norm",
]
