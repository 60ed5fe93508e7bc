"""The live views of lessons_lib.viz in a real browser: JupyterLab 4 (and Notebook 7) driven by
Playwright + Chromium.

A JupyterLab server runs on 127.0.0.1 (no token) with a temporary root dir holding a small notebook
built from ``tests/browser_fixtures/viz_views.py``, a fresh workspaces dir and fresh user settings.
Debian's Chromium (``/usr/bin/chromium``; Playwright never downloads a browser here) opens the
notebook, runs all cells, and the tests check the DOM: the attention explorer renders; choosing
another head, hovering and clicking a query token, and the mask toggle change what is shown; the
softmax sliders change the readout and entropy; the positional view reacts to its controls; the
selection made in the browser reaches Python. Nothing may be fetched from outside 127.0.0.1.

Without Chromium (or Playwright) the tests skip with the reason; with ``CI=true`` they fail instead.
On failure a screenshot goes to ``test-artifacts/``; a passing run saves
``docs/img/attention-explorer.png``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "browser_fixtures" / "viz_views.py"
ARTIFACTS = ROOT / "test-artifacts"
README_IMAGE = ROOT / "docs" / "img" / "attention-explorer.png"
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
]
FIRST_RENDER_MS = 150_000  # kernel start + TensorFlow import, on a loaded 2-core machine
STEP_MS = 20_000


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(
            f"{reason} (CI=true: the browser tests must run; .ci/run installs chromium with apt)"
        )
    pytest.skip(reason)


def _chromium() -> str:
    for candidate in (
        os.environ.get("CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).exists():
            return candidate
    _unavailable(
        "Chromium is not installed (apt-get install -y chromium); the browser tests need it"
    )
    raise AssertionError  # unreachable


def notebook_from_percent(path: Path) -> nbformat.NotebookNode:
    """A tiny percent-format reader: ``# %%`` starts a code cell; the text before the first marker
    is dropped."""
    cells, current = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# %%"):
            if current is not None:
                cells.append("\n".join(current).strip("\n"))
            current = []
        elif current is not None:
            current.append(line)
    if current is not None:
        cells.append("\n".join(current).strip("\n"))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"viz-{i}"
    nb.metadata = {
        "kernelspec": {
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
            "name": "python3",
        },
        "language_info": {"name": "python"},
    }
    return nb


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 serving a temporary root with ``viz_views.ipynb``; yields
    its base URL."""
    chromium = _chromium()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the Python package playwright is not installed")
    base = tmp_path_factory.mktemp("lab")
    root, workspaces, settings, config, runtime = (
        base / n for n in ("root", "ws", "settings", "config", "rt")
    )
    for d in (root, workspaces, settings, config, runtime):
        d.mkdir()
    nbformat.write(notebook_from_percent(FIXTURE), root / "viz_views.ipynb")
    # fresh user settings: no "news" question, no update check (nothing to fetch, nothing popping
    # up)
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (
        settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    ).write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port = _free_port()
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(workspaces),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("PYTEST_CURRENT_TEST", None)
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.token=",
        "--ServerApp.password=",
        "--allow-root",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={workspaces}",
        "--LabApp.expose_app_in_browser=True",
        "--JupyterNotebookApp.expose_app_in_browser=True",
        "--ServerApp.open_browser=False",
    ]
    log_path = base / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield {"url": url, "chromium": chromium, "log": log_path}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=lab["chromium"], args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


class Page:
    """A browser page that remembers external requests and view errors, and screenshots itself on
    failure."""

    def __init__(self, browser, lab, name: str):
        self.name = name
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.page.set_default_timeout(STEP_MS)
        self.external: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", self._request)
        self.page.on(
            "console", lambda m: self.errors.append(m.text) if "lessons_lib.viz" in m.text else None
        )
        self.page.on("pageerror", lambda e: self.errors.append(str(e)) if "viz" in str(e) else None)

    def _request(self, request) -> None:
        if not re.match(r"^(http://127\.0\.0\.1[:/]|data:|blob:|about:)", request.url):
            self.external.append(request.url)

    def __enter__(self):
        return self.page

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            ARTIFACTS.mkdir(exist_ok=True)
            try:
                self.page.screenshot(
                    path=str(ARTIFACTS / f"browser-{self.name}.png"), full_page=True
                )
            except Exception:  # noqa: BLE001 - the original failure matters more
                pass
        self.context.close()
        return False


def _open_and_run_all(page, url: str) -> None:
    """Open the notebook, accept a kernel dialog if any, wait for an idle kernel, run every cell."""
    page.goto(url, wait_until="domcontentloaded", timeout=90_000)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands", timeout=60_000)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        accept = page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
        if accept.count() and accept.first.is_visible():
            accept.first.click()
        ready = page.evaluate("""() => {
            const w = window.jupyterapp.shell.currentWidget;
            const s = w && w.sessionContext;
            return !!(s && s.session && s.session.kernel && !s.isRestarting
                      && s.kernelDisplayStatus === 'idle');
        }""")
        if ready:
            break
        page.wait_for_timeout(250)
    else:
        raise AssertionError("the kernel did not become idle")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_selector(".lv-root.lv-attention .lv-panel", timeout=FIRST_RENDER_MS)
    page.wait_for_selector(".lv-root.lv-softmax .lv-bars", timeout=STEP_MS)
    page.wait_for_selector(".lv-root.lv-positional .lv-wave", timeout=STEP_MS)
    page.locator('.jp-OutputArea-output:has-text("python sees:")').first.wait_for(timeout=STEP_MS)


def _wait_text(locator, pattern: str, timeout_ms: int = STEP_MS) -> str:
    """Wait until a locator's text matches ``pattern`` (regex); return the text."""
    deadline = time.monotonic() + timeout_ms / 1000
    text = ""
    while time.monotonic() < deadline:
        text = locator.inner_text()
        if re.search(pattern, text):
            return text
        time.sleep(0.1)
    raise AssertionError(f"text {text!r} never matched {pattern!r}")


def test_views_in_jupyterlab(lab, browser):
    helper = Page(browser, lab, "jupyterlab")
    with helper as page:
        _open_and_run_all(page, f"{lab['url']}/lab/tree/viz_views.ipynb")

        # --- attention explorer -------------------------------------------------------------------
        att = page.locator(".lv-root.lv-attention")
        assert att.count() == 1
        assert att.locator(".lv-panel").count() == 1
        assert att.locator(".lv-panel").get_attribute("data-head") == "0"
        assert att.locator(".lv-cell").count() == 36  # 6 queries x 6 keys
        readout = att.locator(".lv-readout")
        assert "no query selected" in readout.inner_text()
        highlight = att.locator(".lv-row-highlight").first
        assert highlight.get_attribute("visibility") == "hidden"

        # another head: a second panel appears
        att.locator('.lv-head[data-head="1"]').click()
        page.wait_for_function(
            "() => document.querySelectorAll('.lv-attention .lv-panel').length === 2"
        )
        assert [p.get_attribute("data-head") for p in att.locator(".lv-panel").all()] == ["0", "1"]
        assert att.get_attribute("data-heads") == "0,1"

        # hover a query token: its row is highlighted in every panel and the readout lists its keys
        att.locator('.lv-qtok[data-q="2"]').hover()
        text = _wait_text(readout, r"query 2 “or”")
        assert "head 0 · query 2 “or” → 2:or 0.999" in text
        assert "head 1 · query 2 “or” → 1:be 0.593" in text
        for h in att.locator(".lv-row-highlight").all():
            assert h.get_attribute("visibility") == "visible" and h.get_attribute("data-q") == "2"
        assert att.locator(".lv-rowline").count() == 2
        assert (
            att.locator('.lv-rowline[data-head="0"] .lv-key.lv-top').get_attribute("data-k") == "2"
        )

        # click another query: it stays pinned when the mouse leaves
        att.locator('.lv-qtok[data-q="3"]').click()
        page.mouse.move(5, 5)
        _wait_text(readout, r"query 3 “not”")
        assert att.locator(".lv-qtok.lv-pinned").get_attribute("data-q") == "3"
        assert att.get_attribute("data-pinned") == "3"
        # the arrow keys move the pinned query (and are not taken by the notebook's command-mode
        # shortcuts)
        active_cell = "() => window.jupyterapp.shell.currentWidget.content.activeCellIndex"
        cell_before = page.evaluate(active_cell)
        page.keyboard.press("ArrowDown")
        _wait_text(readout, r"query 4 “to”")
        page.keyboard.press("ArrowUp")
        _wait_text(readout, r"query 3 “not”")
        assert page.evaluate(active_cell) == cell_before
        y3 = highlight.get_attribute("y")

        # hovering a heatmap cell of another row previews that row, leaving restores the pinned one
        att.locator('.lv-panel[data-head="0"] .lv-cell[data-q="5"][data-k="0"]').hover()
        _wait_text(readout, r"query 5 “be”")
        assert highlight.get_attribute("y") != y3
        page.mouse.move(5, 5)
        _wait_text(readout, r"query 3 “not”")
        assert highlight.get_attribute("y") == y3

        # the causal mask: 15 blocked cells per panel, drawn as cells again when switched off
        assert att.locator(".lv-cell.lv-blocked").count() == 2 * 15
        att.locator(".lv-mask-toggle").uncheck()
        page.wait_for_function(
            "() => document.querySelectorAll('.lv-attention .lv-cell.lv-blocked').length === 0"
        )
        att.locator(".lv-mask-toggle").check()
        page.wait_for_function(
            "() => document.querySelectorAll('.lv-attention .lv-cell.lv-blocked').length === 30"
        )
        _wait_text(readout, r"query 3 “not”")

        ARTIFACTS.mkdir(exist_ok=True)
        README_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        att.screenshot(path=str(README_IMAGE))

        # --- softmax explorer ---------------------------------------------------------------------
        sm = page.locator(".lv-root.lv-softmax")
        sm_readout = sm.locator(".lv-readout")
        before = sm_readout.inner_text()
        assert "entropy 0.000 nats" in before and "top weight 1.000" in before
        assert sm.get_attribute("data-saturated") == "true"
        assert sm.locator(".lv-saturated").is_visible()
        # the keyboard moves the temperature slider one step
        temp = sm.locator("input.lv-temp")
        value = temp.input_value()
        temp.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(
            "(v) => document.querySelector('.lv-softmax input.lv-temp').value !== v", arg=value
        )
        _wait_text(sm.locator(".lv-temp-value"), r"^1\.02$")
        # the largest d_k and temperature 100 spread the weights out
        sm.locator("input.lv-dk").fill(sm.locator("input.lv-dk").get_attribute("max"))
        _wait_text(sm.locator(".lv-dk-value"), r"^4096 ")
        temp.fill("2")
        after = _wait_text(sm_readout, r"entropy 1\.0\d\d nats")
        assert after != before
        assert float(sm.get_attribute("data-entropy")) > 1.0
        assert sm.get_attribute("data-saturated") == "false"
        assert not sm.locator(".lv-saturated").is_visible()
        heights = [float(b.get_attribute("height")) for b in sm.locator(".lv-bar").all()]
        assert len(heights) == 3 and max(heights) - min(heights) < 60
        # switching the scaling off saturates again
        sm.locator("input.lv-scale").uncheck()
        _wait_text(sm_readout, r"top weight 0\.99\d|top weight 1\.000")

        # --- positional explorer ------------------------------------------------------------------
        pos = page.locator(".lv-root.lv-positional")
        assert pos.locator(".lv-wave").count() == 4
        pos.locator('.lv-dim[data-dim="1"]').click()
        page.wait_for_function(
            "() => document.querySelectorAll('.lv-positional .lv-wave').length === 5"
        )
        marker = pos.locator(".lv-marker")
        old = marker.get_attribute("data-value")
        pos.locator("input.lv-pos").fill("10")
        _wait_text(pos.locator(".lv-readout"), r"PE\[0\]·PE\[10\] = ")
        assert marker.get_attribute("data-value") != old

        # --- the browser's selection reached Python
        # ---------------------------------------------------------
        last = page.locator(".jp-Notebook .jp-Cell").nth(4)
        last.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Control+Enter")
        _wait_text(
            last.locator(".jp-OutputArea-output"), r"query=3 heads=\[0, 1\] d_k=4096 position=10"
        )

        assert not helper.errors, helper.errors
        assert not helper.external, (
            f"the page fetched from outside 127.0.0.1: {helper.external[:5]}"
        )


def test_views_in_notebook7(lab, browser):
    """The same notebook in Notebook 7 (served by the same server): the views render and react to a
    click."""
    helper = Page(browser, lab, "notebook7")
    with helper as page:
        _open_and_run_all(page, f"{lab['url']}/notebooks/viz_views.ipynb")
        att = page.locator(".lv-root.lv-attention")
        att.locator('.lv-qtok[data-q="4"]').click()
        _wait_text(att.locator(".lv-readout"), r"query 4 “to” → 2:or 0.826")
        assert page.locator(".lv-root.lv-softmax .lv-bar").count() == 3
        assert page.locator(".lv-root.lv-positional .lv-wave").count() == 4
        assert not helper.errors, helper.errors
        assert not helper.external, (
            f"the page fetched from outside 127.0.0.1: {helper.external[:5]}"
        )
