"""Build a lesson notebook from its percent-format source and execute it, storing the outputs.

Sources live in ``notebooks/src/NN_name.py`` (reviewable diffs); the executed ``notebooks/NN_name.ipynb`` is what
learners open and what nbval re-checks. Cell markers::

    # %% [markdown]            a Markdown cell; each line starts with "# " (stripped)
    # %%                       a code cell
    # %% tags=["nbval-ignore-output", "solution"]   a code cell with tags

A cell tagged ``solution`` is stored collapsed (``jupyter.source_hidden``) so learners try first.
A cell tagged ``raises-exception`` is expected to raise (nbval and papermill both honour the tag).

Usage: ``python tools/nbbuild.py notebooks/src/04_self_attention.py [...]`` (or ``--all``).
Execution refuses to store a notebook with stderr output or an unexpected error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
MARKER = re.compile(r"^# %%(?P<md> \[markdown\])?(?:\s+tags=(?P<tags>\[.*\]))?\s*$")


def parse_source(text: str) -> list[nbformat.NotebookNode]:
    cells: list[nbformat.NotebookNode] = []
    kind, tags, lines = None, [], []

    def flush() -> None:
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(re.sub(r"^# ?", "", ln) for ln in body.splitlines())
            cell = nbformat.v4.new_markdown_cell(body)
        else:
            cell = nbformat.v4.new_code_cell(body)
        if tags:
            cell.metadata["tags"] = list(tags)
        if "solution" in tags:
            cell.metadata["jupyter"] = {"source_hidden": True}
        cells.append(cell)

    for line in text.splitlines():
        m = MARKER.match(line)
        if m:
            flush()
            kind = "markdown" if m.group("md") else "code"
            tags = json.loads(m.group("tags")) if m.group("tags") else []
            lines = []
        elif kind is not None:
            lines.append(line)
    flush()
    return cells


def notebook_from_source(src: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = parse_source(src.read_text(encoding="utf-8"))
    nb.metadata = {
        "kernelspec": {
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "name": "python3",
        },
        "language_info": {"name": "python"},
    }
    for i, cell in enumerate(nb.cells):  # stable ids keep diffs small
        cell["id"] = f"{src.stem[:2]}-{i:03d}"
    return nb


def execute(nb: nbformat.NotebookNode, timeout: int = 600) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    # No stored widget state: exports (nbconvert, GitHub) then show each view's PNG, and JupyterLab re-renders the
    # live view when the cell is run again.
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        store_widget_state=False,
        resources={"metadata": {"path": str(NB_DIR)}},
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


def build(src: Path, run: bool = True) -> Path:
    nb = notebook_from_source(src)
    if run:
        execute(nb)
    out = NB_DIR / f"{src.stem}.ipynb"
    nbformat.write(nb, out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("sources", nargs="*", type=Path)
    p.add_argument("--all", action="store_true", help="build every notebooks/src/*.py")
    p.add_argument("--no-run", action="store_true", help="write the notebook without executing it")
    a = p.parse_args(argv)
    sources = sorted((NB_DIR / "src").glob("[0-9][0-9]_*.py")) if a.all else a.sources
    if not sources:
        p.error("name at least one source or use --all")
    for src in sources:
        print(f"building {src.name} ...", flush=True)
        print("  wrote", build(src, run=not a.no_run).relative_to(ROOT), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
