"""Notebook 09 in a real browser: JupyterLab on loopback, headless Chromium driven by Playwright.

The test runs every cell and moves the TMI-length slider to a value the cached sweep contains. It
checks that the widget's heatmap image changed and that no output shows a widget's plain-text
fallback, which a front end without the widget extension prints instead of the controls. A
screenshot is saved in ``test-artifacts/``. The test skips only where Debian's Chromium is not
installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "notebooks/09_prompt_length_and_depth.ipynb"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium tries to reach Google's servers, which a closed
# network turns into long timeouts.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FALLBACK_TEXTS = ("IntSlider(", "IntRangeSlider(", "Dropdown(", "HBox(children=", "VBox(children=", "Output(")
# Seconds to wait for the whole notebook and for one redraw. Generous, because a busy 2-core machine
# runs the notebook's fresh stream several times slower than an idle one.
RUN_ALL_TIMEOUT = 300
REDRAW_TIMEOUT = 120

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(),
    reason=f"Chromium not found at {CHROMIUM}; install Debian's chromium and chromium-driver packages (.ci/run does)",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_server(url: str, process: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with status {process.returncode}; its log:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer {url.split('?')[0]} within {timeout:.0f} s; its log:\n{log.read_text()}")


@pytest.fixture()
def jupyter_lab(tmp_path):
    """Start JupyterLab on 127.0.0.1 with a random token and throw-away settings; yield its base URL and token."""
    port, token = free_port(), secrets.token_hex(16)

    # Autosave off, so the executed notebook is never written back into the repository. No news fetch.
    settings = tmp_path / "lab-settings"
    for plugin, values in {
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    log = tmp_path / "jupyterlab.log"
    command = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={REPO}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",  # the default "pypi" manager queries PyPI when its panel opens
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # CI containers run as root, and JupyterLab refuses root without it

    with log.open("w") as handle:
        process = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_server(f"{base}/api/status?token={token}", process, log)
        yield base, token
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def output_image_source(page) -> str | None:
    """Return the data URL of the image inside the explorer's Output widget, or None before it is drawn."""
    images = page.locator(".widget-output img")
    if images.count() == 0:
        return None
    return images.first.get_attribute("src")


def test_notebook_09_slider_redraws_heatmap(jupyter_lab, tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
    from playwright.sync_api import sync_playwright

    base, token = jupyter_lab
    notebook_path = REPO / NOTEBOOK
    stored = hashlib.sha256(notebook_path.read_bytes()).hexdigest()
    ARTIFACTS.mkdir(exist_ok=True)

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = context.new_page()
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}", timeout=60_000)
            page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
            # With fresh settings JupyterLab asks which kernel to start, so take the preselected one.
            kernel_dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
            try:
                kernel_dialog.wait_for(timeout=10_000)
                kernel_dialog.locator("button", has_text="Select").click()
            except PlaywrightTimeoutError:
                pass
            # Wait for the kernel before running, or the run request goes to a kernel still starting.
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(timeout=90_000)

            page.locator(".lm-MenuBar-item", has_text="Run").first.click()
            page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
            # Done when every code cell shows an execution count and none shows [*].
            page.wait_for_function(
                "() => { const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
                ".map(p => p.textContent.trim());"
                " return prompts.length > 0 && prompts.every(t => /^\\[\\d+\\]:$/.test(t)); }",
                timeout=RUN_ALL_TIMEOUT * 1000,
            )
            page.wait_for_function(
                "() => document.querySelector('.widget-output img') !== null", timeout=REDRAW_TIMEOUT * 1000
            )
            before = output_image_source(page)
            assert before is not None and before.startswith("data:image/png")

            slider = page.locator(".widget-slider", has=page.locator(".widget-label", has_text="TMI length"))
            assert slider.count() == 1
            readout = slider.locator(".widget-readout")
            assert readout.inner_text().strip() == "10"
            readout.click()
            page.keyboard.press("Control+A")
            page.keyboard.type("2")
            page.keyboard.press("Enter")
            page.wait_for_function(
                "(before) => { const img = document.querySelector('.widget-output img');"
                " return img !== null && img.getAttribute('src') !== before; }",
                arg=before,
                timeout=REDRAW_TIMEOUT * 1000,
            )
            after = output_image_source(page)
            page.locator(".widget-output img").first.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "browser_notebook_09.png"), full_page=True)

            assert after != before
            assert readout.inner_text().strip() == "2"
            status = page.locator(".widget-html", has_text="TMI length 2").first.inner_text()
            assert "cached sweep" in status
            assert page.locator(".widget-slider").count() >= 3  # TMI, TMDG and the boundary range slider
            outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
            assert outputs, "no cell output found"
            for text in outputs:
                for fallback in FALLBACK_TEXTS:
                    assert fallback not in text, f"a cell shows a widget's text fallback {fallback!r}: {text[:200]}"
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            tracebacks = [text for text in errors.all_inner_texts() if "Traceback" in text or "Error" in text]
            assert not tracebacks, tracebacks[0][:500]
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "browser_notebook_09_failure.png"), full_page=True)
            (ARTIFACTS / "browser_notebook_09_failure.html").write_text(page.content())
            raise
        finally:
            context.close()

    assert hashlib.sha256(notebook_path.read_bytes()).hexdigest() == stored, f"{NOTEBOOK} was modified by the browser run"

