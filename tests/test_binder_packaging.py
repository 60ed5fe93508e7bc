"""Binder and the pins: the config lints, and every pin agrees across requirements files."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r"):
            out.update(pins(path.parent / line.split()[1]))
        elif "==" in line:
            name, version = line.split("==")
            out[re.sub(r"\[.*\]", "", name).lower()] = version
    return out


def test_every_direct_dependency_is_pinned():
    for f in (
        "requirements.txt",
        "requirements-gpu.txt",
        "requirements-common.txt",
        "binder/requirements.txt",
    ):
        for line in (ROOT / f).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith(("-r", "-e", ".")):
                assert "==" in line, f"{f}: {line!r} is not pinned with =="


def test_binder_pins_match_requirements():
    main, binder, gpu = (
        pins(ROOT / f)
        for f in ("requirements.txt", "binder/requirements.txt", "requirements-gpu.txt")
    )
    for name, version in binder.items():
        assert main.get(name) == version, (
            f"binder pins {name}=={version}, requirements.txt {main.get(name)}"
        )
    assert gpu["tensorflow"] == main["tensorflow-cpu"]
    assert "." in (ROOT / "binder/requirements.txt").read_text().split(), (
        "binder must install lessons_lib"
    )


def test_binder_start_and_runtime():
    start = (ROOT / "binder/start").read_text().strip().splitlines()
    assert start[-1] == 'exec "$@"'
    assert "TF_CPP_MIN_LOG_LEVEL=3" in "\n".join(start)
    assert (ROOT / "binder/runtime.txt").read_text().strip() == "python-3.11"


def test_repo2docker_accepts_the_binder_config():
    exe = shutil.which("jupyter-repo2docker") or str(
        Path(sys.executable).parent / "jupyter-repo2docker"
    )
    if not Path(exe).exists():
        pytest.skip("jupyter-repo2docker is not installed")
    r = subprocess.run(
        [exe, "--no-build", "--debug", str(ROOT)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-2000:]
    text = r.stdout + r.stderr
    assert "python=3.11" in text
    install = text.index('pip install --no-cache-dir -r "binder/requirements.txt"')
    assert text.index("COPY --chown=0:0 src/ ") < install, (
        "lessons_lib (`.`) must be installable: repo copied first"
    )
    assert 'R2D_ENTRYPOINT="${REPO_DIR}/binder/start"' in text
