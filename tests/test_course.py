"""Tests for llm_course (instructor tools): the runner, the build, the README table, the CLI.

They work on tiny notebooks and sources written to a temporary folder. These never import
TensorFlow, so each one runs in about a second (kernel start-up).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from llm_course import build, cli, readme, runner

ROOT = Path(__file__).resolve().parents[1]


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
    """00 passes (parameters cell, a raises-exception cell, ~100 MB allocated), 01 fails at cell 3,
    02 has no parameters cell, 03 sleeps (for the wall-limit test; not part of the main run)."""
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(
        _notebook(
            [
                ("markdown", "# Passing lesson", []),
                ("code", "FULL = False", ["parameters"]),
                (
                    "code",
                    "from pathlib import Path\n"
                    "assert Path('00_pass.ipynb').exists()  # cwd is the notebooks folder\n"
                    "blob = b'x' * 100_000_000\nimport time\ntime.sleep(1.0)\n"
                    "print('FULL =', FULL)",
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
    report = runner.run_course(
        notebooks_dir=nb_dir, out_dir=base / "course-run", progress=False, timeout=120
    )
    return base, nb_dir, before, report


def _result(report: runner.CourseReport, name: str) -> runner.NotebookResult:
    return next(r for r in report.results if r.notebook == name)


def _stdout(cell) -> str:
    """The cell's stdout as one string: the kernel may send ``print``'s text and its newline
    as two stream messages (it did in CI under load), so the outputs are joined, not indexed."""
    return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")


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
    assert _stdout(out.cells[-1]) == "done\n"  # ran to the end
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
    assert _stdout(out.cells[2]) == "FULL = False\n"  # the assert on the relative path passed


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


# --------------------------------------------------------------------------------- the README table


README_TEXT = (
    "# Course\n\nIntro.\n\n"
    "<!-- lesson-table:start -->\nold table\n<!-- lesson-table:end -->\n\nAfter.\n"
)


def test_readme_table_from_the_report(fast_run):
    base, nb_dir, _, report = fast_run
    table = readme.render_table(base / "course-run" / "report.json", nb_dir, readme_dir=base)
    lines = table.splitlines()
    assert lines[0].startswith("Measured by `llm-course run` on ")
    assert f" {report.cpu_count} CPU cores ({report.date[:10]}); " in lines[0]
    assert lines[1:4] == [
        "",
        "| # | notebook | what you build | runtime | peak memory |",
        "|:--|:--|:--|--:|--:|",
    ]
    rows = lines[4:]
    assert len(rows) == 3  # one per NN_*.ipynb; notes.ipynb is not a lesson
    assert rows[0].startswith(f"| 00 | [00_pass](notebooks/00_pass.ipynb) | {readme.WHAT['00']} | ")
    assert "(failed)" in rows[1] and "(failed)" not in rows[0]
    r2 = _result(report, "02_plain.ipynb")
    # the table is rendered from report.json, which stores the figures rounded (3 and 1 decimals)
    runtime = readme.format_runtime(round(r2.wall_s, 3))
    memory = readme.format_memory(round(r2.peak_rss_mb, 1))
    link = "[02_plain](notebooks/02_plain.ipynb)"
    assert rows[2] == f"| 02 | {link} | {readme.WHAT['02']} | {runtime} | {memory} |"
    # from the loaded dict as well as from the path
    assert readme.render_table(report.to_dict(), nb_dir, readme_dir=base) == table


def test_readme_table_marks_notebooks_missing_from_the_report(fast_run):
    base, nb_dir, _, report = fast_run
    data = report.to_dict()
    data["notebooks"] = data["notebooks"][:1]
    rows = readme.render_table(data, nb_dir, readme_dir=base).splitlines()[4:]
    assert rows[1].endswith(f"| {readme.WHAT['01']} | — | — |")
    assert rows[2].endswith("| — | — |")


def test_readme_command_rewrites_only_the_table(fast_run, tmp_path, capsys):
    base, nb_dir, _, _ = fast_run
    readme_md = tmp_path / "README.md"
    readme_md.write_text(README_TEXT, encoding="utf-8")
    argv = ["readme", str(base / "course-run" / "report.json"), "--readme", str(readme_md)]
    assert cli.main([*argv, "--notebooks", str(nb_dir)]) == 0
    printed = capsys.readouterr().out
    text = readme_md.read_text(encoding="utf-8")
    before, table, after = re.split(r"<!-- lesson-table:(?:start|end) -->", text)
    assert before == "# Course\n\nIntro.\n\n" and after == "\n\nAfter.\n"
    assert table.strip("\n") == printed.strip("\n")
    assert "old table" not in text and table.count("\n| 0") == 3
    assert cli.main([*argv, "--notebooks", str(nb_dir)]) == 0  # idempotent
    assert readme_md.read_text(encoding="utf-8") == text


def test_readme_command_errors(tmp_path, capsys):
    readme_md = tmp_path / "README.md"
    readme_md.write_text("no markers here\n", encoding="utf-8")
    missing = tmp_path / "nothing.json"
    assert cli.main(["readme", str(missing), "--readme", str(readme_md)]) == 2
    assert "run `llm-course run` first" in capsys.readouterr().err
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"notebooks": [], "cpu_count": 2, "date": "2026-01-02"}))
    assert cli.main(["readme", str(report), "--readme", str(readme_md)]) == 2
    assert "<!-- lesson-table:start -->" in capsys.readouterr().err
    assert readme_md.read_text(encoding="utf-8") == "no markers here\n"


def test_the_readme_lesson_table_lists_every_lesson():
    """README.md's table has the renderer's layout and a described row for every lesson notebook."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split(readme.START)[1].split(readme.END)[0].strip("\n").splitlines()
    assert table[0].startswith("Measured by `llm-course run` on ")
    assert table[2] == "| # | notebook | what you build | runtime | peak memory |"
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert len(table) == 4 + len(notebooks)
    for row, nb in zip(table[4:], notebooks):
        key = nb.name[:2]
        assert key in readme.WHAT, f"llm_course/readme.py: WHAT has no description for {nb.name}"
        assert row.startswith(f"| {key} | [{nb.stem}](notebooks/{nb.name}) | {readme.WHAT[key]} | ")


def test_formatting_helpers():
    assert readme.format_runtime(0.2) == "1 s"
    assert readme.format_runtime(44.6) == "45 s"
    assert readme.format_runtime(125) == "2 min 05 s"
    assert readme.format_memory(412.4) == "412 MB"
    assert readme.format_memory(1331) == "1.3 GB"


def test_full_mode_passes_FULL_only_where_a_parameters_cell_exists(tmp_path, capsys):
    nb_dir = write_notebooks(tmp_path / "notebooks")
    out = tmp_path / "run"
    code = cli.main(
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
    assert _stdout(nb0.cells[3]) == "FULL = True\n"
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
    code = cli.main(
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
    result = runner.run_notebook(nb_dir / "05_slow.ipynb", tmp_path / "out", timeout=5)
    assert result.status == "fail"
    assert result.failure is not None
    assert (result.failure.cell_index, result.failure.first_line) == (1, "import time")
    assert result.failure.ename == "Timeout"
    assert "wall-clock limit of 5 s" in result.failure.evalue
    assert result.wall_s < 60


def test_only_selects_by_prefix_and_unknown_prefix_lists_available(tmp_path, capsys):
    nb_dir = write_notebooks(tmp_path / "notebooks")
    found = runner.find_notebooks(nb_dir)
    assert [p.name for p in found] == ["00_pass.ipynb", "01_fail.ipynb", "02_plain.ipynb"]
    assert [p.name for p in runner.select_notebooks(found, ["02", "0"])] == [
        "00_pass.ipynb",
        "02_plain.ipynb",
    ]
    assert runner.select_notebooks(found, None) == found
    with pytest.raises(
        runner.UnknownNotebookError, match=r"'07'; available: 00 \(00_pass\), 01 \(01_fail\)"
    ):
        runner.select_notebooks(found, ["00", "07"])

    code = cli.main(
        ["run", "--only", "07", "--notebooks", str(nb_dir), "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown notebook prefix '07'" in err and "02 (02_plain)" in err
    assert not (tmp_path / "o").exists()  # nothing ran


def test_output_folder_may_not_be_the_notebooks_folder(tmp_path, capsys):
    nb_dir = write_notebooks(tmp_path / "notebooks")
    before = _digests(nb_dir)
    assert cli.main(["run", "--notebooks", str(nb_dir), "--out", str(nb_dir)]) == 2
    assert "must not be the notebooks folder" in capsys.readouterr().err
    with pytest.raises(ValueError, match="must not be the notebooks folder"):
        runner.run_notebook(nb_dir / "00_pass.ipynb", nb_dir)
    assert _digests(nb_dir) == before


def test_default_locations_and_environment_override(tmp_path, monkeypatch):
    assert runner.DEFAULT_OUT_DIR == runner.ROOT / "course-run"
    assert runner.DEFAULT_OUT_DIR != runner.DEFAULT_NOTEBOOKS_DIR
    monkeypatch.delenv(runner.NOTEBOOKS_ENV, raising=False)
    assert runner.notebooks_dir_default() == runner.ROOT / "notebooks"
    monkeypatch.setenv(runner.NOTEBOOKS_ENV, str(tmp_path))
    assert runner.notebooks_dir_default() == tmp_path
    with pytest.raises(ValueError, match="no notebooks"):
        runner.run_course(out_dir=tmp_path / "out", progress=False)


def test_parameters_cell_detection(tmp_path):
    nb_dir = write_notebooks(tmp_path / "notebooks")
    assert runner.parameters_cell(nb_dir / "00_pass.ipynb") == "FULL = False"
    assert runner.parameters_cell(nb_dir / "02_plain.ipynb") is None


# ---------------------------------------------------------------------------------------- the build

SOURCE = """\
# %% [markdown]
# # 07 · A tiny lesson
#
# Goals: none.

# %% tags=["nbval-ignore-output"]
import os

x = 1


def f():
    return x


# %% tags=["solution"]
print(f(), os.path.basename(os.getcwd()))

# %% [markdown]
# ## Summary
"""


def _write_source(folder: Path, name: str, text: str = SOURCE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_notebook_from_source_cells_ids_tags_and_metadata(tmp_path):
    src = _write_source(tmp_path / "notebooks" / "src", "07_tiny.py")
    nb = build.notebook_from_source(src, root=tmp_path)
    nbformat.validate(nb)
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code", "markdown"]
    assert [c.id for c in nb.cells] == ["07-000", "07-001", "07-002", "07-003"]
    assert nb.cells[0].source == "# 07 · A tiny lesson\n\nGoals: none."
    assert nb.cells[1].source == "import os\n\nx = 1\n\n\ndef f():\n    return x"
    assert nb.cells[3].source == "## Summary"
    # only the tags, and the hidden solution: none of jupytext's own metadata (lines_to_next_cell,
    # ...)
    assert [c.metadata for c in nb.cells] == [
        {},
        {"tags": ["nbval-ignore-output"]},
        {"tags": ["solution"], "jupyter": {"source_hidden": True}},
        {},
    ]
    assert nb.metadata == {
        "kernelspec": {
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "name": "python3",
        },
        "language_info": {"name": "python"},
        "llm_course": {"source": "notebooks/src/07_tiny.py"},
    }
    assert build.notebook_from_source(src, root=tmp_path) == nb  # deterministic


def test_build_refuses_cell_metadata_other_than_tags(tmp_path):
    text = '# %% [markdown]\n# Title\n\n# %% tags=["a"] slideshow={"slide_type": "slide"}\nx = 1\n'
    src = _write_source(tmp_path, "07_meta.py", text)
    with pytest.raises(ValueError, match=r"07_meta.py: cell 1 .*\['slideshow'\].*only tags"):
        build.notebook_from_source(src)


def test_build_executes_in_the_notebooks_folder_and_stores_outputs(tmp_path):
    src = _write_source(tmp_path / "src", "07_tiny.py")
    out = build.build(src, out_dir=tmp_path / "nb")
    assert out == tmp_path / "nb" / "07_tiny.ipynb"
    nb = nbformat.read(out, as_version=4)
    assert _stdout(nb.cells[2]) == "1 nb\n"  # ran with the notebooks folder as cwd
    assert all(c.execution_count for c in nb.cells if c.cell_type == "code")
    assert not any("execution" in c.metadata for c in nb.cells)
    assert "widgets" not in nb.metadata
    assert nb.metadata["llm_course"] == {"source": build.source_key(src)}
    assert nb.cells[2].metadata["jupyter"] == {"source_hidden": True}


def test_build_refuses_stderr_output(tmp_path):
    text = '# %%\nimport sys\n\nprint("oops", file=sys.stderr)\n'
    src = _write_source(tmp_path / "src", "07_noisy.py", text)
    with pytest.raises(RuntimeError, match="cell 07-000 wrote to stderr"):
        build.build(src, out_dir=tmp_path / "nb")
    assert not (tmp_path / "nb" / "07_noisy.ipynb").exists()


def test_build_names_sources_by_prefix_or_path(tmp_path):
    folder = tmp_path / "src"
    a, b = _write_source(folder, "04_a.py"), _write_source(folder, "05_b.py")
    _write_source(folder, "notes.py")  # not a lesson
    assert build.all_sources(folder) == [a, b]
    assert build.resolve_sources(["5", "04", str(a)], folder) == [b, a, a]
    with pytest.raises(
        build.UnknownSourceError, match=r"prefix '07'; available: 04 \(04_a\), 05 \(05_b\)"
    ):
        build.resolve_sources(["07"], folder)
    with pytest.raises(build.UnknownSourceError, match="'nope.py' does not exist"):
        build.resolve_sources(["nope.py"], folder)


def test_build_command_usage_errors(capsys):
    assert cli.main(["build"]) == 2
    assert "name at least one source" in capsys.readouterr().err
    assert cli.main(["build", "99"]) == 2
    err = capsys.readouterr().err
    assert "no lesson source for prefix '99'" in err and "06 (06_feed_forward)" in err
    assert cli.main(["build", "06", "--all"]) == 2


# -------------------------------------------------------------------------------------- the command

HELP_PROBE = textwrap.dedent(
    """
    import runpy, sys
    sys.argv = ["llm-course", *sys.argv[1:]]
    try:
        runpy.run_module("llm_course", run_name="__main__")
    except SystemExit as exc:
        assert exc.code == 0, exc.code
    heavy = ("tensorflow", "keras", "lessons_lib", "nbformat", "nbclient", "papermill", "jupytext")
    print("heavy modules imported:", sorted(m for m in heavy if m in sys.modules))
    """
)


@pytest.mark.parametrize(
    "args", [["--help"], ["run", "--help"], ["build", "--help"], ["readme", "--help"]], ids=" ".join
)
def test_help_imports_neither_tensorflow_nor_keras(args):
    """`llm-course --help` stays fast: no TensorFlow, Keras, lessons_lib or Jupyter libraries."""
    r = subprocess.run(
        [sys.executable, "-c", HELP_PROBE, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: llm-course")
    assert r.stdout.strip().splitlines()[-1] == "heavy modules imported: []", r.stdout


def test_console_script_and_package_are_declared():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert "\n[project.scripts]\n" in text
    assert '\nllm-course = "llm_course.cli:main"\n' in text
    assert re.search(r'\ninclude = \[[^]]*"llm_course\*"', text)


# ----------------------------------------------------------------------------- the test run (nbval)

NBVAL_PROBE = textwrap.dedent(
    """
    import json, os

    def pytest_collection_finish(session):
        timeouts = {i.output_timeout for i in session.items if type(i).__name__ == "IPyNbCell"}
        with open(os.environ["NBVAL_PROBE_OUT"], "w") as f:
            json.dump(sorted(timeouts), f)
    """
)


@pytest.mark.slow
def test_nbval_waits_long_enough_for_cell_output(tmp_path):
    """Notebook items get a generous nbval output timeout (root conftest.py), however started."""
    (tmp_path / "nbval_probe.py").write_text(NBVAL_PROBE, encoding="utf-8")
    result = tmp_path / "timeouts.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
        "NBVAL_PROBE_OUT": str(result),
    }

    def output_timeouts(*args: str, cwd: Path = ROOT) -> list[float]:
        result.unlink(missing_ok=True)
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "nbval_probe", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        return json.loads(result.read_text())

    nb = "06_feed_forward.ipynb"
    assert output_timeouts("--noconftest", f"notebooks/{nb}") == [5]  # nbval's own default
    [timeout] = output_timeouts(f"notebooks/{nb}")
    assert timeout >= 60
    assert output_timeouts(nb, cwd=ROOT / "notebooks") == [timeout]
