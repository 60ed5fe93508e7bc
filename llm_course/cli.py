"""The ``llm-course`` command (also ``python -m llm_course``): ``run``, ``build`` and ``readme``.

Each subcommand imports what it needs when it runs, so ``llm-course --help`` (and each subcommand's
``--help``) loads neither TensorFlow, Keras nor ``lessons_lib``, nor the Jupyter libraries.

Exit status: 0 on success, 1 when a notebook failed (``run``), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from llm_course import runner
from llm_course.paths import README, ROOT, SOURCES_DIR


def _display(path: str | Path) -> str:
    """``path`` relative to the repository root when it lies below it (shorter messages)."""
    path = Path(path).resolve()
    return os.path.relpath(path, ROOT) if path.is_relative_to(ROOT) else str(path)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``llm-course`` with its three subcommands."""
    parser = argparse.ArgumentParser(
        prog="llm-course",
        description="Instructor tools of the course: build the lesson notebooks from their "
        "sources, run them all and report time and memory, and update the README's lesson table.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,build,readme}")

    run = sub.add_parser(
        "run",
        help="execute the notebooks with papermill and write the report",
        description="Execute notebooks/NN_*.ipynb in order, each in a fresh kernel, into an output "
        "folder (never over the committed notebooks), and write report.md and report.json: per "
        "notebook pass/fail, wall time and the kernel's peak memory.",
    )
    run.add_argument(
        "--full", action="store_true", help="pass FULL=True to notebooks with a parameters cell"
    )
    run.add_argument("--only", nargs="+", metavar="NN", help="run only these two-digit prefixes")
    run.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"output folder (default {_display(runner.DEFAULT_OUT_DIR)}/)",
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help=f"wall-clock limit per notebook (default {runner.DEFAULT_TIMEOUT:g}, "
        f"{runner.DEFAULT_FULL_TIMEOUT:g} with --full)",
    )
    run.add_argument(
        "--cell-timeout",
        type=float,
        default=None,
        metavar="S",
        help="limit per cell (default: --timeout)",
    )
    run.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="PATH",
        help="Markdown report path (default OUT/report.md; JSON next to it)",
    )
    run.add_argument(
        "--notebooks",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"notebooks folder (default ${runner.NOTEBOOKS_ENV} or "
        f"{_display(runner.DEFAULT_NOTEBOOKS_DIR)}/)",
    )
    run.add_argument(
        "--kernel", default=runner.KERNEL_NAME, help="Jupyter kernel name (default python3)"
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)

    build = sub.add_parser(
        "build",
        help="build notebooks/NN_*.ipynb from notebooks/src/NN_*.py and execute it",
        description="Build each lesson notebook from its percent-format source (jupytext) and "
        "execute it in a fresh kernel, storing the outputs; a notebook with stderr output or an "
        "unexpected error is not written.",
    )
    build.add_argument(
        "sources",
        nargs="*",
        metavar="NN",
        help=f"two-digit prefix (04) or path of a source in {_display(SOURCES_DIR)}/",
    )
    build.add_argument("--all", action="store_true", help="build every notebooks/src/NN_*.py")
    build.add_argument(
        "--no-run", action="store_true", help="write the notebook without executing it"
    )
    build.set_defaults(func=_build)

    readme = sub.add_parser(
        "readme",
        help="rewrite the README's lesson table from report.json",
        description="Rewrite the lesson table between <!-- lesson-table:start --> and "
        "<!-- lesson-table:end --> in README.md from the report of `llm-course run`, and print it.",
    )
    readme.add_argument(
        "report",
        nargs="?",
        type=Path,
        default=runner.DEFAULT_OUT_DIR / "report.json",
        help="report.json of `llm-course run` "
        f"(default {_display(runner.DEFAULT_OUT_DIR / 'report.json')})",
    )
    # for the tests: another README and notebooks folder
    readme.add_argument("--readme", type=Path, default=README, help=argparse.SUPPRESS)
    readme.add_argument(
        "--notebooks", type=Path, default=runner.DEFAULT_NOTEBOOKS_DIR, help=argparse.SUPPRESS
    )
    readme.set_defaults(func=_readme)
    return parser


def _run(args: argparse.Namespace) -> int:
    try:
        report = runner.run_course(
            notebooks_dir=args.notebooks,
            out_dir=args.out,
            only=args.only,
            full=args.full,
            timeout=args.timeout,
            cell_timeout=args.cell_timeout,
            report_path=args.report,
            kernel_name=args.kernel,
            progress=not args.no_progress,
        )
    except ValueError as exc:  # includes UnknownNotebookError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    md = Path(args.report) if args.report is not None else Path(report.out_dir) / "report.md"
    failed = [r.notebook for r in report.results if not r.passed]
    summary = (
        f"{len(report.results) - len(failed)}/{len(report.results)} notebooks passed; report: {md}"
    )
    print(summary if not failed else f"{summary}; failed: {', '.join(failed)}")
    return 0 if report.ok else 1


def _build(args: argparse.Namespace) -> int:
    from llm_course import build

    try:
        import jupytext  # noqa: F401
        import nbclient  # noqa: F401
    except ImportError as exc:  # e.g. on Binder, which installs only what learners need
        print(
            f"error: llm-course build needs {exc.name}: pip install -r requirements.txt",
            file=sys.stderr,
        )
        return 2
    if args.all and args.sources:
        print("error: give prefixes/paths or --all, not both", file=sys.stderr)
        return 2
    try:
        sources = build.all_sources() if args.all else build.resolve_sources(args.sources)
    except build.UnknownSourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not sources:
        print("error: name at least one source (NN or a path) or use --all", file=sys.stderr)
        return 2
    for src in sources:
        print(f"building {src.name} ...", flush=True)
        print("  wrote", _display(build.build(src, run=not args.no_run)), flush=True)
    return 0


def _readme(args: argparse.Namespace) -> int:
    from llm_course import readme

    if not args.report.exists():
        print(f"error: {args.report} does not exist; run `llm-course run` first", file=sys.stderr)
        return 2
    try:
        table = readme.update_readme(args.report, args.readme, args.notebooks)
    except ValueError as exc:
        print(f"error: {args.readme}: {exc}", file=sys.stderr)
        return 2
    print(table)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``llm-course``; returns the exit status."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
