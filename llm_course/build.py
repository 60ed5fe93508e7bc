"""Build a lesson notebook from its percent-format source and execute it, storing the outputs.

Sources live in ``notebooks/src/NN_name.py`` (reviewable diffs); the executed
``notebooks/NN_name.ipynb`` is what learners open and what nbval re-checks. The source is read by
jupytext (``py:percent``); cell markers::

    # %% [markdown]                                a Markdown cell; "# " starts each line (stripped)
    # %%                                           a code cell
    # %% tags=["nbval-ignore-output", "solution"]  a code cell with tags

What the build adds to what jupytext reads:

* stable cell ids ``NN-000``, ``NN-001``, ... (small diffs between builds);
* a cell tagged ``solution`` is stored collapsed (``metadata.jupyter.source_hidden``) so learners
  try first (a cell tagged ``raises-exception`` is expected to raise; nbval and papermill both
  honour the tag);
* the notebook metadata: the ``python3`` kernelspec, and ``metadata.llm_course.source``, the source
  it was built from relative to the repository root (no hash, no time: the build is deterministic);
* nothing of jupytext's own metadata (its notebook block, ``lines_to_next_cell``, ...): cells keep
  only their tags, and other cell metadata in a marker line is refused rather than silently dropped;
* blank lines at the start and end of a code cell are dropped (jupytext keeps a third blank line
  before a marker).

Usage::

    llm-course build 04 05                             # by two-digit prefix
    llm-course build notebooks/src/04_self_attention.py
    llm-course build --all                             # every notebooks/src/NN_*.py
    llm-course build 04 --no-run                       # write the notebook without executing it

Execution refuses to store a notebook with stderr output or an unexpected error, and stores no
widget state.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from llm_course.paths import NOTEBOOKS_DIR, ROOT, SOURCES_DIR

# nbformat, nbclient and jupytext are imported where used (`llm-course --help` stays fast).
if TYPE_CHECKING:
    import nbformat

SOURCE_GLOB = "[0-9][0-9]_*.py"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
#: Cell metadata that jupytext derives from the text layout (not the author's): dropped.
JUPYTEXT_CELL_KEYS = frozenset(
    {"lines_to_next_cell", "lines_to_end_of_cell_marker", "cell_marker", "skipline", "noskipline"}
)
#: The one cell metadata key an author writes in a marker line.
KEPT_CELL_KEYS = frozenset({"tags"})
DEFAULT_CELL_TIMEOUT = 600


class UnknownSourceError(ValueError):
    """A prefix or path names no lesson source; the message lists the available ones."""


def cells_from_source(text: str, name: str = "<source>") -> list[nbformat.NotebookNode]:
    """The cells of a percent-format source (jupytext ``py:percent``): tags, hidden solutions.

    Raises:
        ValueError: a marker line carries cell metadata other than ``tags`` (``name`` says where).
    """
    import jupytext
    import nbformat

    read = jupytext.reads(text, fmt="py:percent")
    cells = []
    for i, jt_cell in enumerate(read.cells):
        meta = {k: v for k, v in jt_cell.metadata.items() if k not in JUPYTEXT_CELL_KEYS}
        unknown = sorted(set(meta) - KEPT_CELL_KEYS)
        if unknown:
            first = jt_cell.source.splitlines()[0] if jt_cell.source else ""
            raise ValueError(
                f"{name}: cell {i} ({first[:60]!r}) has cell metadata {unknown} in its marker "
                "line; the build keeps only tags=[...]"
            )
        if jt_cell.cell_type == "markdown":
            cell = nbformat.v4.new_markdown_cell(jt_cell.source)
        elif jt_cell.cell_type == "code":
            cell = nbformat.v4.new_code_cell(jt_cell.source.strip("\n"))
        else:
            cell = nbformat.v4.new_raw_cell(jt_cell.source)
        tags = list(meta.get("tags", []))
        if tags:
            cell.metadata["tags"] = tags
        if "solution" in tags:
            cell.metadata["jupyter"] = {"source_hidden": True}
        cells.append(cell)
    return cells


def source_key(src: str | Path, root: str | Path = ROOT) -> str:
    """The source's path relative to the repository root, with ``/`` (``metadata.llm_course``)."""
    return Path(os.path.relpath(Path(src).resolve(), Path(root).resolve())).as_posix()


def notebook_from_source(src: str | Path, root: str | Path = ROOT) -> nbformat.NotebookNode:
    """The (unexecuted) notebook for ``src``: cells, stable ids, kernelspec, the recorded source."""
    import nbformat

    src = Path(src)
    nb = nbformat.v4.new_notebook()
    nb.cells = cells_from_source(src.read_text(encoding="utf-8"), name=str(src))
    nb.metadata = {
        "kernelspec": dict(KERNELSPEC),
        "language_info": {"name": "python"},
        "llm_course": {"source": source_key(src, root)},
    }
    for i, cell in enumerate(nb.cells):  # stable ids keep diffs small
        cell["id"] = f"{src.stem[:2]}-{i:03d}"
    return nb


def execute(
    nb: nbformat.NotebookNode,
    timeout: int = DEFAULT_CELL_TIMEOUT,
    cwd: str | Path = NOTEBOOKS_DIR,
) -> None:
    """Run ``nb`` in a fresh ``python3`` kernel in ``cwd``, in place; refuse stderr output.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell not tagged ``raises-exception`` raised.
        RuntimeError: a cell wrote to stderr (nbval would fail on it).
    """
    from nbclient import NotebookClient

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # No stored widget state: exports (nbconvert, GitHub) then show each view's PNG, and JupyterLab
    # re-renders the live view when the cell is run again.
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=KERNELSPEC["name"],
        store_widget_state=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        for out in cell.get("outputs", []):
            if out.get("name") == "stderr":
                raise RuntimeError(
                    f"cell {cell['id']} wrote to stderr (nbval would fail):\n{out['text'][:2000]}"
                )
    nb.metadata.pop("widgets", None)


def build(src: str | Path, run: bool = True, out_dir: str | Path = NOTEBOOKS_DIR) -> Path:
    """Build ``src`` into ``out_dir/<stem>.ipynb``, executed there unless ``run`` is false."""
    import nbformat

    src = Path(src)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    nb = notebook_from_source(src)
    if run:
        execute(nb, cwd=out_dir)
    out = out_dir / f"{src.stem}.ipynb"
    nbformat.write(nb, out)
    return out


def all_sources(sources_dir: str | Path = SOURCES_DIR) -> list[Path]:
    """Every lesson source ``NN_*.py``, in order."""
    return sorted(Path(sources_dir).glob(SOURCE_GLOB))


def resolve_sources(names: Iterable[str], sources_dir: str | Path = SOURCES_DIR) -> list[Path]:
    """Lesson sources named by two-digit prefix (``"04"``, ``"4"``) or by path, in the order given.

    Raises:
        UnknownSourceError: a prefix matches no source (or several), or a path does not exist.
    """
    available = all_sources(sources_dir)

    def listing() -> str:
        return ", ".join(f"{p.name[:2]} ({p.stem})" for p in available) or "none"

    out: list[Path] = []
    for name in names:
        name = str(name).strip()
        if re.fullmatch(r"\d{1,2}", name):
            prefix = name.zfill(2)
            matches = [p for p in available if p.name[:2] == prefix]
            if len(matches) != 1:
                what = "no lesson source" if not matches else "several sources"
                raise UnknownSourceError(f"{what} for prefix {prefix!r}; available: {listing()}")
            out.append(matches[0])
        else:
            path = Path(name)
            if not path.is_file():
                raise UnknownSourceError(
                    f"source {name!r} does not exist; give a path or a prefix: {listing()}"
                )
            out.append(path)
    return out
