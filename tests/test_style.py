"""Code style: `ruff format` and `ruff check` at 100 columns, configured in pyproject.toml.

To fix a failure, run `ruff format FILE...` and `ruff check --fix FILE...` on the files you touched.
ruff is pinned in requirements-common.txt.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ruff_format():
    r = _ruff("format", "--check", "--diff", ".")
    assert r.returncode == 0, (
        f"`ruff format --check` failed (exit {r.returncode}); run `ruff format` on these files:\n"
        f"{r.stdout[-20000:]}{r.stderr[-5000:]}"
    )


def test_ruff_check():
    r = _ruff("check", "--no-fix", "--output-format", "concise", ".")
    assert r.returncode == 0, (
        f"`ruff check` failed (exit {r.returncode}):\n{r.stdout[-20000:]}{r.stderr[-5000:]}"
    )
