"""Tests for lessons_lib.course: the instructor runner, on tiny notebooks written to a temporary folder.

The notebooks here never import TensorFlow, so each one runs in about a second (kernel start-up).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nbformat
import pytest
from lessons_lib import course


def _notebook(cells: list[tuple[str, str, list[str]]]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    for kind, source, tags in cells:
        cell = (
            nbformat.v4.new_code_cell(source)
            if kind == "code"
            else nbformat.v4.new_markdown_cell(source)
        )
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    return nb


def write_notebooks(folder: Path) -> Path:
    """00 passes (parameters cell, a raises-exception cell, ~100 MB allocated), 01 fails at cell 3, 02 has no
    parameters cell, 03 sleeps (for the wall-limit test; not part of the main run)."""
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(
        _notebook(
            [
                ("markdown", "# Passing lesson", []),
                ("code", "FULL = False", ["parameters"]),
                (
                    "code",
                    "from pathlib import Path\nassert Path('00_pass.ipynb').exists()  # cwd is the notebooks folder\n"
                    "blob = b'x' * 100_000_000\nimport time\ntime.sleep(1.0)\nprint('FULL =', FULL)",
                    [],
                ),
                ("code", "1 / 0", ["raises-exception"]),
                ("code", "print('done')", []),
            ]
        ),
        folder / "00_pass.ipynb",
    )
    nbformat.write(
        _notebook(
            [
                ("markdown", "# Failing lesson", []),
                ("code", "x = 1", []),
                ("markdown", "Now divide.", []),
                ("code", "\n# divide by zero on purpose\ny = x / 0", []),
                ("code", "print('never reached')", []),
            ]
        ),
        folder / "01_fail.ipynb",
    )
    nbformat.write(
        _notebook([("code", "print('no parameters here')", [])]), folder / "02_plain.ipynb"
    )
    nbformat.write(
        _notebook([("markdown", "Notes, not a lesson", [])]), folder / "notes.ipynb"
    )  # not NN_
    return folder


def _digests(folder: Path) -> dict[str, tuple[str, int]]:
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.iterdir())
    }


@pytest.fixture(scope="module")
def fast_run(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("course")
    nb_dir = write_notebooks(base / "notebooks")
    before = _digests(nb_dir)
    report = course.run_course(
        notebooks_dir=nb_dir, out_dir=base / "course-run", progress=False, timeout=120
    )
    return base, nb_dir, before, report


def _result(report: course.CourseReport, name: str) -> course.NotebookResult:
    return next(r for r in report.results if r.notebook == name)


def test_runs_every_lesson_notebook_in_order(fast_run):
    _, _, _, report = fast_run
    assert [r.notebook for r in report.results] == [
        "00_pass.ipynb",
        "01_fail.ipynb",
        "02_plain.ipynb",
    ]
    assert [r.status for r in report.results] == ["pass", "fail", "pass"]
    assert not report.ok
    assert report.mode == "fast"


def test_failing_cell_is_identified_and_run_continues(fast_run):
    _, _, _, report = fast_run
    failure = _result(report, "01_fail.ipynb").failure
    assert failure is not None
    assert (failure.cell_index, failure.execution_count) == (3, 2)
    assert failure.first_line == "# divide by zero on purpose"
    assert (failure.ename, failure.evalue) == ("ZeroDivisionError", "division by zero")
    assert (
        failure.describe()
        == "cell 3 (In [2]) `# divide by zero on purpose`: ZeroDivisionError: division by zero"
    )
    assert _result(report, "02_plain.ipynb").passed  # the notebook after the failure still ran


def test_raises_exception_cells_do_not_fail_a_notebook(fast_run):
    base, _, _, report = fast_run
    assert _result(report, "00_pass.ipynb").failure is None
    out = nbformat.read(base / "course-run" / "00_pass.ipynb", as_version=4)
    assert out.cells[-1].outputs[0]["text"] == "done\n"  # ran to the end
    assert not any("papermill-error-cell-tag" in c.metadata.get("tags", []) for c in out.cells)


def test_time_and_kernel_memory_are_measured(fast_run):
    _, _, _, report = fast_run
    measured = {r.notebook: (r.wall_s, r.peak_rss_mb) for r in report.results}
    for r in report.results:
        assert r.wall_s > 0, measured
        assert r.peak_rss_mb > 10, measured  # a Python kernel alone holds tens of MB
    # 00 allocates 100 MB on top of a bare kernel: the sampler follows the kernel, not this process
    assert measured["00_pass.ipynb"][1] > measured["02_plain.ipynb"][1] + 60, measured


def test_fast_mode_injects_nothing_and_cwd_is_the_notebooks_folder(fast_run):
    base, _, _, _ = fast_run
    out = nbformat.read(base / "course-run" / "00_pass.ipynb", as_version=4)
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in out.cells)
    assert (
        out.cells[2].outputs[0]["text"] == "FULL = False\n"
    )  # the assert on the relative path passed


def test_committed_notebooks_untouched_outputs_in_out_dir(fast_run):
    base, nb_dir, before, _ = fast_run
    assert _digests(nb_dir) == before
    written = sorted(p.name for p in (base / "course-run").iterdir())
    assert written == [
        "00_pass.ipynb",
        "01_fail.ipynb",
        "02_plain.ipynb",
        "report.json",
        "report.md",
    ]


def test_markdown_and_json_reports(fast_run):
    base, _, _, report = fast_run
    md = (base / "course-run" / "report.md").read_text(encoding="utf-8")
    header = md.splitlines()[2]
    for part in (
        "Python ",
        "TensorFlow ",
        "Keras ",
        " CPUs",
        "mode: fast",
        "3 notebooks, 1 failed",
    ):
        assert part in header
    assert "| notebook | status | wall time (s) | peak kernel memory (MB) |" in md
    r0 = _result(report, "00_pass.ipynb")
    assert f"| 00_pass.ipynb | pass | {r0.wall_s:.1f} | {r0.peak_rss_mb:.0f} |" in md
    assert "| 01_fail.ipynb | **FAIL** |" in md
    assert (
        "- **01_fail.ipynb**: cell 3 (In [2]) `# divide by zero on purpose`: ZeroDivisionError"
        in md
    )

    data = json.loads((base / "course-run" / "report.json").read_text(encoding="utf-8"))
    assert data["mode"] == "fast" and data["ok"] is False and data["cpu_count"] >= 1
    assert [n["status"] for n in data["notebooks"]] == ["pass", "fail", "pass"]
    assert data["notebooks"][1]["failure"]["cell_index"] == 3
    assert data["notebooks"][0]["peak_rss_mb"] == pytest.approx(r0.peak_rss_mb, abs=0.06)


def test_readme_table(fast_run):
    base, _, _, report = fast_run
    table = course.readme_table(
        base / "course-run" / "report.json", ["02", "00_pass", "01_fail.ipynb", "09"]
    )
    lines = table.splitlines()
    assert lines[0] == "| notebook | runtime | peak memory |"
    r2 = _result(report, "02_plain.ipynb")
    # the table is rendered from report.json, which stores the figures rounded (3 and 1 decimals)
    runtime, memory = (
        course.format_runtime(round(r2.wall_s, 3)),
        course.format_memory(round(r2.peak_rss_mb, 1)),
    )
    assert lines[2] == f"| 02_plain | {runtime} | {memory} |"
    assert lines[3].startswith("| 00_pass | ")
    assert "(failed)" in lines[4]
    assert lines[5] == "| 09 | — | — |"
    # all notebooks by default, from a dict as well as from a path
    assert course.readme_table(report.to_dict()) == course.readme_table(
        str(base / "course-run" / "report.json")
    )


def test_formatting_helpers():
    assert course.format_runtime(0.2) == "1 s"
    assert course.format_runtime(44.6) == "45 s"
    assert course.format_runtime(125) == "2 min 05 s"
    assert course.format_memory(412.4) == "412 MB"
    assert course.format_memory(1331) == "1.3 GB"


def test_full_mode_passes_FULL_only_where_a_parameters_cell_exists(tmp_path, capsys):
    nb_dir = write_notebooks(tmp_path / "notebooks")
    out = tmp_path / "run"
    code = course.main(
        [
            "run",
            "--full",
            "--only",
            "00",
            "2",
            "--notebooks",
            str(nb_dir),
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "2/2 notebooks passed" in captured.out
    assert "parameter" not in captured.err.lower()  # papermill had nothing to warn about
    nb0 = nbformat.read(out / "00_pass.ipynb", as_version=4)
    injected = [c for c in nb0.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "FULL = True" in injected[0].source
    assert nb0.cells[3].outputs[0]["text"] == "FULL = True\n"
    nb2 = nbformat.read(out / "02_plain.ipynb", as_version=4)
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb2.cells)
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert data["mode"] == "full"
    assert [(n["notebook"], n["parameters"]) for n in data["notebooks"]] == [
        ("00_pass.ipynb", {"FULL": True}),
        ("02_plain.ipynb", {}),
    ]


def test_exit_code_1_when_a_notebook_fails_and_custom_report_path(tmp_path, capsys):
    nb_dir = write_notebooks(tmp_path / "notebooks")
    report = tmp_path / "reports" / "run.md"
    code = course.main(
        [
            "run",
            "--only",
            "01",
            "--notebooks",
            str(nb_dir),
            "--out",
            str(tmp_path / "o"),
            "--report",
            str(report),
            "--no-progress",
        ]
    )
    assert code == 1
    assert "failed: 01_fail.ipynb" in capsys.readouterr().out
    assert report.exists() and report.with_suffix(".json").exists()


def test_wall_limit_interrupts_a_long_notebook(tmp_path):
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    nbformat.write(
        _notebook([("markdown", "# slow", []), ("code", "import time\ntime.sleep(120)", [])]),
        nb_dir / "05_slow.ipynb",
    )
    result = course.run_notebook(nb_dir / "05_slow.ipynb", tmp_path / "out", timeout=5)
    assert result.status == "fail"
    assert result.failure is not None
    assert (result.failure.cell_index, result.failure.first_line) == (1, "import time")
    assert result.failure.ename == "Timeout"
    assert "wall-clock limit of 5 s" in result.failure.evalue
    assert result.wall_s < 60


def test_only_selects_by_prefix_and_unknown_prefix_lists_available(tmp_path, capsys):
    nb_dir = write_notebooks(tmp_path / "notebooks")
    found = course.find_notebooks(nb_dir)
    assert [p.name for p in found] == ["00_pass.ipynb", "01_fail.ipynb", "02_plain.ipynb"]
    assert [p.name for p in course.select_notebooks(found, ["02", "0"])] == [
        "00_pass.ipynb",
        "02_plain.ipynb",
    ]
    assert course.select_notebooks(found, None) == found
    with pytest.raises(
        course.UnknownNotebookError, match=r"'07'; available: 00 \(00_pass\), 01 \(01_fail\)"
    ):
        course.select_notebooks(found, ["00", "07"])

    code = course.main(
        ["run", "--only", "07", "--notebooks", str(nb_dir), "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown notebook prefix '07'" in err and "02 (02_plain)" in err
    assert not (tmp_path / "o").exists()  # nothing ran


def test_output_folder_may_not_be_the_notebooks_folder(tmp_path, capsys):
    nb_dir = write_notebooks(tmp_path / "notebooks")
    before = _digests(nb_dir)
    assert course.main(["run", "--notebooks", str(nb_dir), "--out", str(nb_dir)]) == 2
    assert "must not be the notebooks folder" in capsys.readouterr().err
    with pytest.raises(ValueError, match="must not be the notebooks folder"):
        course.run_notebook(nb_dir / "00_pass.ipynb", nb_dir)
    assert _digests(nb_dir) == before


def test_default_locations_and_environment_override(tmp_path, monkeypatch):
    assert course.DEFAULT_OUT_DIR == course.ROOT / "course-run"
    assert course.DEFAULT_OUT_DIR != course.DEFAULT_NOTEBOOKS_DIR
    monkeypatch.delenv(course.NOTEBOOKS_ENV, raising=False)
    assert course.notebooks_dir_default() == course.ROOT / "notebooks"
    monkeypatch.setenv(course.NOTEBOOKS_ENV, str(tmp_path))
    assert course.notebooks_dir_default() == tmp_path
    with pytest.raises(ValueError, match="no notebooks"):
        course.run_course(out_dir=tmp_path / "out", progress=False)


def test_parameters_cell_detection(tmp_path):
    nb_dir = write_notebooks(tmp_path / "notebooks")
    assert course.parameters_cell(nb_dir / "00_pass.ipynb") == "FULL = False"
    assert course.parameters_cell(nb_dir / "02_plain.ipynb") is None
