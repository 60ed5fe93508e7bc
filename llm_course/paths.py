"""Where things are in the repository (the instructor tools work on a checkout, not a copy)."""

from __future__ import annotations

from pathlib import Path

#: The repository root (``llm_course/`` sits directly below it).
ROOT = Path(__file__).resolve().parents[1]
#: The lesson notebooks learners open (``NN_name.ipynb``, with stored outputs).
NOTEBOOKS_DIR = ROOT / "notebooks"
#: Their sources (``NN_name.py``, jupytext percent format).
SOURCES_DIR = NOTEBOOKS_DIR / "src"
#: The README whose lesson table ``llm-course readme`` rewrites.
README = ROOT / "README.md"
