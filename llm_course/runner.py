"""Instructor runner: run every lesson notebook in a fresh kernel; report pass/fail, time, memory.

Usage (from the repository root; ``pip install -e .`` installs the ``llm-course`` command, and
``python -m llm_course`` is the same)::

    llm-course run                    # all notebooks/NN_*.ipynb, stored defaults ("fast")
    llm-course run --full             # pass FULL=True to notebooks with a `parameters` cell
    llm-course run --only 00 03       # select by two-digit prefix
    llm-course run --out /tmp/run --timeout 300 --report /tmp/run/report.md

How it works

* Notebooks ``NN_*.ipynb`` of the notebooks folder (``notebooks/``; ``--notebooks DIR`` or the
  environment variable ``LESSONS_NOTEBOOKS_DIR`` override it) run in order with papermill, kernel
  ``python3``, working directory = the notebooks folder, so relative paths behave as in JupyterLab.
  The executed copies go to the output folder (``course-run/`` at the repository root by default);
  the committed notebooks are never written, and an output folder equal to the notebooks folder is
  refused.
* ``--full`` passes the papermill parameter ``FULL=True`` only to notebooks that have a cell tagged
  ``parameters`` (the cell tags are inspected first), so notebooks without one run unchanged and
  papermill has nothing to warn about; its "Passed unknown parameter" warning is filtered out for
  notebooks whose parameters cell does not mention ``FULL``.
* Time limits: papermill's ``execution_timeout`` bounds every cell (``--cell-timeout``, default: the
  notebook limit), and the whole notebook gets a wall-clock limit (``--timeout``; 600 s, or 3600 s
  with ``--full``) enforced by the monitor thread below: past the limit it interrupts the kernel
  (SIGINT, so the running cell fails with ``KeyboardInterrupt`` and is reported as a timeout) and
  kills the kernel's process tree if it is still running 10 s later.
* Peak memory: papermill (through nbclient/jupyter_client) starts the kernel as a child process of
  this process. A background thread records the processes that are descendants of ``os.getpid()``
  before the notebook starts, then every 0.1 s sums the resident set size (RSS) of every *new*
  descendant — the kernel and anything it spawned — and keeps the maximum. This needs no cooperation
  from the notebook and also counts memory held by native libraries (TensorFlow, BLAS) that
  ``tracemalloc`` would miss. Spikes shorter than the sampling interval can be missed; MB here means
  2**20 bytes.
* A failing notebook is reported with its failing cell — index among the notebook's own cells
  (0-based, papermill's injected-parameters cell is not counted), execution count, first source
  line, error name and message — and the run goes on. Cells tagged ``raises-exception`` may raise
  (nbclient lets them; this runner does not count their errors, although papermill on its own
  would).
* Results: a Markdown report (``course-run/report.md``) and the same data as JSON next to it
  (``report.json``), from which ``llm-course readme`` (:mod:`llm_course.readme`) rewrites the
  README's lesson table.

Exit status: 0 when every notebook passed, 1 when any failed, 2 for a usage error (e.g. an unknown
prefix).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import logging
import math
import os
import platform
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil  # light (~50 ms); nbformat and papermill are imported where used, to keep --help fast

from llm_course.paths import ROOT

#: The lesson notebooks' folder unless ``notebooks_dir``, ``--notebooks`` or the variable below say
#: otherwise.
DEFAULT_NOTEBOOKS_DIR = ROOT / "notebooks"
#: Where executed copies and reports go by default (ignored by git).
DEFAULT_OUT_DIR = ROOT / "course-run"
NOTEBOOKS_ENV = "LESSONS_NOTEBOOKS_DIR"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
#: Whole-notebook wall-clock limits in seconds.
DEFAULT_TIMEOUT = 600.0
DEFAULT_FULL_TIMEOUT = 3600.0
KERNEL_NAME = "python3"
SAMPLE_INTERVAL_S = 0.1
KILL_GRACE_S = 10.0
MB = 2**20

_INJECTED_TAG = "injected-parameters"
_PAPERMILL_MARKER_TAG = "papermill-error-cell-tag"


class UnknownNotebookError(ValueError):
    """``only`` named a prefix that matches no notebook; the message lists the available ones."""


@dataclasses.dataclass
class CellFailure:
    """Where and how a notebook failed.

    Attributes:
        cell_index: 0-based index among the notebook's own cells (markdown included), ``None`` if
            the failure happened outside any cell (e.g. the kernel did not start).
        execution_count: the ``In [n]`` number of the cell, if it ran.
        first_line: the first non-empty source line of the cell.
        ename: the error's name (``ZeroDivisionError``, ``Timeout``, ``DeadKernelError``, ...).
        evalue: the error's message, on one line.
    """

    cell_index: int | None
    execution_count: int | None
    first_line: str
    ename: str
    evalue: str

    def describe(self) -> str:
        """One line: ``cell 3 (In [2]) `1 / 0`: ZeroDivisionError: division by zero``."""
        where = "outside any cell" if self.cell_index is None else f"cell {self.cell_index}"
        if self.execution_count is not None:
            where += f" (In [{self.execution_count}])"
        code = f" `{self.first_line}`" if self.first_line else ""
        message = f"{self.ename}: {self.evalue}" if self.evalue else self.ename
        return f"{where}{code}: {message}"


@dataclasses.dataclass
class NotebookResult:
    """The outcome of one notebook: ``status`` is ``"pass"`` or ``"fail"``; memory: the kernel's."""

    notebook: str
    status: str
    wall_s: float
    peak_rss_mb: float
    output: str
    parameters: dict[str, Any]
    failure: CellFailure | None = None

    @property
    def passed(self) -> bool:
        return self.status == "pass"


@dataclasses.dataclass
class CourseReport:
    """All results of one run plus the machine it ran on."""

    date: str
    python: str
    tensorflow: str
    keras: str
    cpu_count: int
    mode: str
    notebooks_dir: str
    out_dir: str
    results: list[NotebookResult]

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``report.json``)."""
        data = dataclasses.asdict(self)
        data["notebooks"] = data.pop("results")
        for nb in data["notebooks"]:
            nb["wall_s"] = round(nb["wall_s"], 3)
            nb["peak_rss_mb"] = round(nb["peak_rss_mb"], 1)
        data["ok"] = self.ok
        data["total_wall_s"] = round(sum(r.wall_s for r in self.results), 3)
        return data

    def header(self) -> str:
        failed = sum(not r.passed for r in self.results)
        return (
            f"{self.date} · Python {self.python} · TensorFlow {self.tensorflow} · "
            f"Keras {self.keras} · {self.cpu_count} CPUs · mode: {self.mode} · "
            f"{len(self.results)} notebooks, {failed} failed · "
            f"total {sum(r.wall_s for r in self.results):.1f} s"
        )

    def to_markdown(self) -> str:
        """The Markdown report: a header line, the table, and the failing cells."""
        lines = [
            "# Course run",
            "",
            self.header(),
            "",
            "| notebook | status | wall time (s) | peak kernel memory (MB) |",
            "|:--|:--|--:|--:|",
        ]
        for r in self.results:
            status = "pass" if r.passed else "**FAIL**"
            lines.append(f"| {r.notebook} | {status} | {r.wall_s:.1f} | {r.peak_rss_mb:.0f} |")
        failures = [r for r in self.results if not r.passed]
        if failures:
            lines += ["", "## Failures", ""]
            for r in failures:
                detail = r.failure.describe() if r.failure else "unknown error"
                lines.append(f"- **{r.notebook}**: {_md_escape(detail)}")
        lines += ["", f"Executed notebooks: `{self.out_dir}`", ""]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------- selection


def notebooks_dir_default() -> Path:
    """``$LESSONS_NOTEBOOKS_DIR`` if set, else ``notebooks/`` at the repository root."""
    env = os.environ.get(NOTEBOOKS_ENV)
    return Path(env) if env else DEFAULT_NOTEBOOKS_DIR


def find_notebooks(notebooks_dir: str | Path) -> list[Path]:
    """The lesson notebooks ``NN_*.ipynb`` of ``notebooks_dir``, in order."""
    folder = Path(notebooks_dir)
    if not folder.is_dir():
        raise ValueError(f"notebooks folder {str(folder)!r} does not exist")
    return sorted(folder.glob(NOTEBOOK_GLOB))


def select_notebooks(notebooks: Sequence[Path], only: Iterable[str] | None) -> list[Path]:
    """The notebooks whose two-digit prefix is in ``only`` (``"3"`` means ``"03"``); all if None.

    Raises:
        UnknownNotebookError: a prefix matches no notebook (the message lists the available ones).
    """
    if only is None:
        return list(notebooks)
    wanted = []
    for prefix in only:
        p = str(prefix).strip()
        if p.isdigit() and len(p) == 1:
            p = "0" + p
        wanted.append(p)
    by_prefix = {nb.name[:2]: nb for nb in notebooks}
    unknown = [p for p in wanted if p not in by_prefix]
    if unknown:
        available = ", ".join(f"{k} ({v.stem})" for k, v in sorted(by_prefix.items())) or "none"
        raise UnknownNotebookError(
            f"unknown notebook prefix{'es' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(u) for u in unknown)}; available: {available}"
        )
    return [nb for nb in notebooks if nb.name[:2] in set(wanted)]


def parameters_cell(path: str | Path) -> str | None:
    """The source of the cell tagged ``parameters`` (``None`` when the notebook has none)."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell.source
    return None


# ---------------------------------------------------------------------------------------- execution


class KernelMonitor(threading.Thread):
    """Samples the RSS of the processes started after it (the kernel tree); enforces a wall limit.

    Create it just before starting the notebook (it snapshots the existing descendants of this
    process), call :meth:`start`, and :meth:`stop` when the notebook is done. ``peak_rss_bytes`` is
    the largest sum of RSS over the new descendants seen in any sample; ``timed_out`` says whether
    the wall limit was hit.
    """

    def __init__(
        self,
        wall_limit_s: float | None,
        interval_s: float = SAMPLE_INTERVAL_S,
        kill_grace_s: float = KILL_GRACE_S,
    ) -> None:
        super().__init__(name="kernel-monitor", daemon=True)
        self._me = psutil.Process()
        self._baseline = {p.pid for p in self._me.children(recursive=True)}
        self.wall_limit_s = wall_limit_s
        self.interval_s = interval_s
        self.kill_grace_s = kill_grace_s
        self.peak_rss_bytes = 0
        self.samples = 0
        self.timed_out = False
        self._stop_event = threading.Event()
        self._t0 = time.monotonic()

    def kernel_processes(self) -> list[psutil.Process]:
        """Descendants of this process that did not exist when the monitor was created."""
        try:
            return [p for p in self._me.children(recursive=True) if p.pid not in self._baseline]
        except psutil.Error:
            return []

    def sample(self) -> int:
        """Sum the RSS of the kernel tree now, update the peak and return the sum."""
        total = 0
        for proc in self.kernel_processes():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        self.samples += 1
        self.peak_rss_bytes = max(self.peak_rss_bytes, total)
        return total

    def run(self) -> None:
        interrupted_at: float | None = None
        while True:
            self.sample()
            elapsed = time.monotonic() - self._t0
            if self.wall_limit_s is not None and elapsed > self.wall_limit_s:
                if interrupted_at is None:
                    self.timed_out = True
                    interrupted_at = elapsed
                    self._signal_kernels(signal.SIGINT)
                elif elapsed - interrupted_at > self.kill_grace_s:
                    self._kill_tree()
                    interrupted_at = elapsed  # try again after another grace period if needed
            if self._stop_event.wait(self.interval_s):
                return

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop_event.set()
        if self.is_alive():
            self.join()

    def _signal_kernels(self, sig: int) -> None:
        for proc in self.kernel_processes():
            with contextlib.suppress(psutil.Error):
                if proc.ppid() == self._me.pid:  # the kernel itself, not what it spawned
                    proc.send_signal(sig)

    def _kill_tree(self) -> None:
        for proc in reversed(self.kernel_processes()):
            with contextlib.suppress(psutil.Error):
                proc.kill()


class _DropUnknownParameterWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Passed unknown parameter" not in record.getMessage()


@contextlib.contextmanager
def _kernel_environment() -> Iterator[None]:
    """The kernels' environment (inherited): quiet TensorFlow, inline plots, lessons_lib found."""
    saved = dict(os.environ)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    paths = [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    log_filter = _DropUnknownParameterWarning()
    pm_logger = logging.getLogger("papermill")
    pm_logger.addFilter(log_filter)
    try:
        yield
    finally:
        pm_logger.removeFilter(log_filter)
        os.environ.clear()
        os.environ.update(saved)


def run_notebook(
    path: str | Path,
    out_dir: str | Path,
    parameters: dict[str, Any] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    cell_timeout: float | None = None,
    kernel_name: str = KERNEL_NAME,
) -> NotebookResult:
    """Execute one notebook with papermill into ``out_dir`` and measure it; a failure is not raised.

    Args:
        path: the notebook to run (it is only read).
        out_dir: where the executed copy is written (same file name).
        parameters: papermill parameters to inject (only if the notebook has a ``parameters`` cell;
            callers decide — :func:`run_course` does).
        timeout: wall-clock limit for the whole notebook in seconds (``None``: none).
        cell_timeout: limit per cell in seconds (default: ``timeout``).
        kernel_name: the Jupyter kernel to use.
    """
    import papermill as pm  # imported here: it is slow to import and only the runner needs it
    from papermill.exceptions import PapermillExecutionError

    path = Path(path).resolve()
    out_dir = Path(out_dir).resolve()
    if out_dir == path.parent:
        raise ValueError(
            f"the output folder must not be the notebooks folder ({out_dir}): "
            "the committed notebooks would be overwritten"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / path.name
    cell_timeout = cell_timeout if cell_timeout is not None else timeout

    monitor = KernelMonitor(timeout)
    error: BaseException | None = None
    start = time.perf_counter()
    monitor.start()
    try:
        with _kernel_environment(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Passed unknown parameter.*")
            pm.execute_notebook(
                str(path),
                str(output),
                parameters=parameters or None,
                kernel_name=kernel_name,
                cwd=str(path.parent),
                progress_bar=False,
                log_output=False,
                execution_timeout=max(1, math.ceil(cell_timeout)) if cell_timeout else None,
            )
    except PapermillExecutionError as exc:
        error = exc
    except (
        Exception
    ) as exc:  # cell timeout, dead kernel, kernel failed to start, unreadable notebook, ...
        error = exc
    finally:
        wall = time.perf_counter() - start
        monitor.stop()

    failure = None
    if error is not None or monitor.timed_out:
        failure = _find_failure(output, error, monitor.timed_out, timeout)
    return NotebookResult(
        notebook=path.name,
        status="pass" if failure is None else "fail",
        wall_s=wall,
        peak_rss_mb=monitor.peak_rss_bytes / MB,
        output=str(output),
        parameters=dict(parameters or {}),
        failure=failure,
    )


def _find_failure(
    output: Path, error: BaseException | None, timed_out: bool, timeout: float | None
) -> CellFailure | None:
    """The failing cell of the executed notebook (``None``: only raises-exception cells raised)."""
    import nbformat
    from papermill.exceptions import PapermillExecutionError

    try:
        nb = nbformat.read(str(output), as_version=4)
    except Exception:
        nb = None
    own: list[tuple[int | None, Any]] = []  # (index among the notebook's own cells, cell)
    if nb is not None:
        i = 0
        for cell in nb.cells:
            tags = cell.get("metadata", {}).get("tags", [])
            if _PAPERMILL_MARKER_TAG in tags:
                continue
            if _INJECTED_TAG in tags:
                own.append((None, cell))
                continue
            own.append((i, cell))
            i += 1

    def failure_for(index: int | None, cell: Any, ename: str, evalue: str) -> CellFailure:
        return CellFailure(
            index, cell.get("execution_count"), _first_line(cell.source), ename, _one_line(evalue)
        )

    timeout_msg = f"the notebook exceeded its wall-clock limit of {timeout:g} s and was interrupted"
    # 1. a cell whose error stopped the run (papermill flags it; not raises-exception cells)
    for index, cell in own:
        if cell.get("metadata", {}).get("papermill", {}).get("exception") is True:
            err = next(
                (o for o in cell.get("outputs", []) if o.get("output_type") == "error"), None
            )
            ename, evalue = (err["ename"], err["evalue"]) if err else ("CellExecutionError", "")
            if timed_out:
                ename, evalue = "Timeout", timeout_msg
            return failure_for(index, cell, ename, evalue)

    if error is None and not timed_out:
        return None
    if isinstance(error, PapermillExecutionError) and not timed_out:
        # Only cells allowed to raise had error outputs: a pass. Drop papermill's "An Exception was
        # encountered" banner from the executed copy so it does not mislead.
        if nb is not None:
            nb.cells = [
                c
                for c in nb.cells
                if _PAPERMILL_MARKER_TAG not in c.get("metadata", {}).get("tags", [])
            ]
            nbformat.write(nb, str(output))
        return None

    # 2. the run was cut short (cell timeout, dead kernel, wall limit): the last cell that started
    ename = "Timeout" if timed_out else type(error).__name__
    evalue = timeout_msg if timed_out else str(error)
    started = [
        (i, c) for i, c in own if c.get("metadata", {}).get("papermill", {}).get("start_time")
    ]
    if started:
        index, cell = started[-1]
        return failure_for(index, cell, ename, evalue)
    return CellFailure(None, None, "", ename, _one_line(evalue))


def _first_line(source: str) -> str:
    line = next((ln.strip() for ln in source.splitlines() if ln.strip()), "")
    return line if len(line) <= 80 else line[:77] + "..."


def _one_line(text: str, limit: int = 300) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(text))  # ANSI colours from tracebacks
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


# --------------------------------------------------------------------------------------- the course


def _package_version(*names: str) -> str:
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            return metadata.version(name)
    return "not installed"


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_course(
    notebooks_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    only: Iterable[str] | None = None,
    full: bool = False,
    timeout: float | None = None,
    cell_timeout: float | None = None,
    report_path: str | Path | None = None,
    kernel_name: str = KERNEL_NAME,
    progress: bool = True,
) -> CourseReport:
    """Run the selected notebooks in order, write ``report.md`` and ``report.json``; return it all.

    Args:
        notebooks_dir: folder with ``NN_*.ipynb`` (default: ``$LESSONS_NOTEBOOKS_DIR`` or
            ``notebooks/``).
        out_dir: folder for the executed copies (default ``course-run/``); must differ from
            ``notebooks_dir``.
        only: two-digit prefixes to run (default: all).
        full: pass ``FULL=True`` to notebooks that have a ``parameters`` cell.
        timeout: wall-clock limit per notebook in seconds (default 600, or 3600 with ``full``).
        cell_timeout: limit per cell in seconds (default: ``timeout``).
        report_path: the Markdown report (default ``out_dir/report.md``); the JSON goes next to it.
        kernel_name: the Jupyter kernel.
        progress: show a tqdm progress bar over the notebooks (a result line per notebook is printed
            either way).

    Raises:
        UnknownNotebookError: ``only`` names a prefix that matches no notebook.
        ValueError: the notebooks folder is missing or holds no notebooks, or ``out_dir`` is the
            notebooks folder.
    """
    from tqdm.auto import tqdm

    nb_dir = Path(notebooks_dir) if notebooks_dir is not None else notebooks_dir_default()
    out = Path(out_dir) if out_dir is not None else DEFAULT_OUT_DIR
    if out.resolve() == nb_dir.resolve():
        raise ValueError(
            f"the output folder must not be the notebooks folder ({nb_dir}): "
            "the committed notebooks would be overwritten"
        )
    notebooks = find_notebooks(nb_dir)
    if not notebooks:
        raise ValueError(f"no notebooks matching {NOTEBOOK_GLOB} in {str(nb_dir)!r}")
    selected = select_notebooks(notebooks, only)
    if timeout is None:
        timeout = DEFAULT_FULL_TIMEOUT if full else DEFAULT_TIMEOUT

    report = CourseReport(
        date=_dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip(),
        python=platform.python_version(),
        tensorflow=_package_version(
            "tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-macos", "tensorflow-intel"
        ),
        keras=_package_version("keras"),
        cpu_count=_cpu_count(),
        mode="full" if full else "fast",
        notebooks_dir=str(nb_dir),
        out_dir=str(out),
        results=[],
    )
    bar = tqdm(selected, unit="notebook", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    for path in bar:
        bar.set_postfix_str(path.name)
        params: dict[str, Any] = {}
        if full and parameters_cell(path) is not None:
            params = {"FULL": True}
        result = run_notebook(
            path,
            out,
            parameters=params,
            timeout=timeout,
            cell_timeout=cell_timeout,
            kernel_name=kernel_name,
        )
        report.results.append(result)
        mark = "✓" if result.passed else "✗"
        line = f"{mark} {result.notebook}  {result.wall_s:.1f} s  {result.peak_rss_mb:.0f} MB"
        if result.failure is not None:
            line += f"  FAILED at {result.failure.describe()}"
        bar.write(line, file=sys.stdout)
    bar.close()
    write_report(report, report_path if report_path is not None else out / "report.md")
    return report


def write_report(report: CourseReport, md_path: str | Path) -> tuple[Path, Path]:
    """Write the Markdown report and, next to it (suffix ``.json``), the JSON; return both paths."""
    md = Path(md_path)
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(report.to_markdown(), encoding="utf-8")
    js = md.with_suffix(".json")
    js.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return md, js
