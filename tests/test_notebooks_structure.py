"""Every lesson notebook is built from its source, has a lesson's shape, stores clean outputs."""

from pathlib import Path

import nbformat
import pytest

from llm_course.build import notebook_from_source, source_key

ROOT = Path(__file__).resolve().parents[1]

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_lessons():
    assert [nb.name[:2] for nb in NOTEBOOKS][:2] == ["00", "01"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_matches_its_source(path):
    """The committed notebook was built from notebooks/src (no hand edits, no stale build)."""
    src = ROOT / "notebooks" / "src" / f"{path.stem}.py"
    assert src.exists(), f"{src} is missing"
    built = notebook_from_source(src)
    stored = nbformat.read(path, as_version=4)
    rebuild = f"rebuild it with `llm-course build {path.name[:2]}`"
    assert [c.source for c in stored.cells] == [c.source for c in built.cells], (
        f"{path.name} differs from {src.name}: {rebuild}"
    )
    assert [c.get("metadata", {}).get("tags", []) for c in stored.cells] == [
        c.get("metadata", {}).get("tags", []) for c in built.cells
    ]
    recorded = stored.metadata.get("llm_course", {}).get("source")
    assert recorded is not None, f"{path.name} does not record its source (an old build): {rebuild}"
    assert recorded == source_key(src) == f"notebooks/src/{path.stem}.py"
    assert (ROOT / recorded).is_file()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_a_complete_lesson(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown").lower()
    first = code[0]
    assert "lessons_lib.setup(" in first.source and "nbval-ignore-output" in first.metadata.get(
        "tags", []
    ), (
        "the first code cell calls lessons_lib.setup() and is tagged nbval-ignore-output "
        "(its banner names the device)"
    )
    assert all(c.get("execution_count") for c in code), (
        "every code cell was executed (stored outputs for nbval)"
    )
    assert any(
        k in markdown for k in ("goals", "in this lesson you will", "by the end of this lesson")
    ), "the lesson states its goals"
    assert "summary" in markdown
    solutions = [c for c in code if "solution" in c.metadata.get("tags", [])]
    assert len(solutions) >= 2, "at least two exercises with hidden solutions"
    assert all(c.metadata.get("jupyter", {}).get("source_hidden") for c in solutions)
    assert sum("check(" in c.source for c in code) >= 2, "exercises use lessons_lib.checks.check"
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), "at least one plot"
    assert not [o for o in outputs if o.get("name") == "stderr"], (
        "no stderr in stored outputs (nbval would fail)"
    )
    errors = [c for c in code if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert all("raises-exception" in c.metadata.get("tags", []) for c in errors), (
        "only cells tagged raises-exception may store an error"
    )
