"""The demo's results in a browser: ``mlnb ui`` on the demo's store, driven by Debian's headless Chromium
through Playwright. The experiment page lists every run of the store (the invocation, each job's run, each
stage's own run) by name; every DCGAN run's latest sample grid renders on its artifact page; screenshots
of both land in the demo's ``results/reports/ui/``.

Installs what it needs (Debian's ``chromium`` with apt-get, Playwright at its pin in envs/constraints.txt)
and skips only when it cannot: no Chromium, and not root or no apt-get. The demo is the session's one run
(``demo_dir``, conftest.py); the server is stopped by its PID.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from mlnb.settings import workflow_section
from tests.workflow.test_workflow import DEMO_CONFIG, REPO, free_port

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package chromium
# (Playwright adds --headless.) None of Chromium's own connections (updates, sync, field trials): a closed
# network refuses them.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1600, "height": 1000}
# The runs table draws only the rows in view, so its page is made tall enough for every run: ROW_HEIGHT per
# run (a row is 33 px) and PAGE_TOP for the header and toolbars.
ROW_HEIGHT, PAGE_TOP = 40, 400
# The expand/collapse button of a run with child runs, in the runs table's name cell (MLflow 3.17's UI).
EXPANDER = "button[data-component-id*='runnamecellrenderer']"
NAME_ROWS = ".ag-pinned-left-cols-container [role=row]"
# A sample grid logged at a step (mlflow log_image with key and step): images/KEY+step+N+timestamp+T+UUID.png
STEP_IMAGE = re.compile(r"samples\+step\+(\d+)\+timestamp\+\d+\+[0-9a-f-]+\.png")
TIMEOUT_MS = 120_000


def install_requirements() -> None:
    """Debian's Chromium (apt) and Playwright (pip, its pinned version), when missing."""
    if not CHROMIUM.exists():
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            pytest.skip(f"the browser test needs {CHROMIUM} (Debian's chromium), or root and apt-get to install it "
                        f"(euid {os.geteuid()}, apt-get {'found' if shutil.which('apt-get') else 'missing'})")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], capture_output=True, env=env, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                       check=True, capture_output=True, env=env, timeout=900)
    try:
        import playwright  # noqa: F401
    except ImportError:  # the test extra lists it; a venv made before it did lacks it
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-c", str(REPO / "envs/constraints.txt"),
                        "playwright"], check=True, timeout=600)


def store_runs(demo_dir: Path) -> tuple[str, dict[str, str], str]:
    """(experiment id, run id -> name of every active run, tracking URI) of the demo's experiment, read
    from the store itself."""
    settings = workflow_section("mlflow", [demo_dir / DEMO_CONFIG], base=demo_dir / "config.yaml")
    assert settings["tracking_uri"] is None  # the demo logs to the store under its results/
    db = demo_dir / "results" / "mlflow" / "mlflow.db"
    with sqlite3.connect(db) as store:
        (experiment_id,) = store.execute("select experiment_id from experiments where name = ?",
                                         (settings["experiment"],)).fetchone()
        runs = dict(store.execute("select run_uuid, name from runs where experiment_id = ? "
                                  "and lifecycle_stage = 'active'", (experiment_id,)).fetchall())
    return str(experiment_id), runs, f"sqlite:///{db}"


@pytest.fixture(scope="module")
def ui(demo_dir):
    """`mlnb ui` on the demo's store, on a free port of 127.0.0.1: (base URL, the URL it printed)."""
    install_requirements()
    port = free_port()
    log = (demo_dir / "results" / "logs" / "ui.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "mlnb.cli", "ui", "--configfile", DEMO_CONFIG,
                               "--port", str(port)],
                              cwd=demo_dir, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        printed = server.stdout.readline()  # printed before the server starts
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5):
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (
                    f"mlnb ui did not answer at {base} (exit {server.poll()}): {printed}"
                    f"{(demo_dir / 'results' / 'logs' / 'ui.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield base, printed
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()


@pytest.fixture()
def page():
    """A page of Debian's headless Chromium, in a fresh profile."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, viewport=VIEWPORT)
        try:
            browser.set_default_timeout(TIMEOUT_MS)
            yield browser.new_page()
        finally:
            browser.close()


def screenshot(page, path: Path) -> None:
    """The page as a PNG at ``path``, the assistant panel closed (it covers a quarter of the page)."""
    close_assistant = page.locator("button[data-component-id='mlflow.assistant.chat_panel.close']")
    if close_assistant.count():
        close_assistant.click()
        close_assistant.wait_for(state="detached")
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    with Image.open(path) as shot:  # a real PNG of the whole page, not a blank one
        assert shot.format == "PNG" and shot.size[0] == page.viewport_size["width"]
        darkest, lightest = shot.convert("L").getextrema()
        assert darkest < lightest


def listed_runs(page) -> dict[str, str]:
    """Run id -> name of every row of the runs table, once every row with child runs is expanded."""
    expanded: set[str] = set()
    while True:
        parents = page.eval_on_selector_all(f"{NAME_ROWS}:has({EXPANDER})",
                                            "rows => rows.map(r => r.getAttribute('row-id'))")
        collapsed = [row for row in parents if row not in expanded]
        if not collapsed:
            break
        shown = page.locator(NAME_ROWS).count()
        page.locator(f"{NAME_ROWS}[row-id='{collapsed[0]}'] {EXPANDER}").click()
        expanded.add(collapsed[0])
        page.wait_for_function("([rows, shown]) => document.querySelectorAll(rows).length > shown",
                               arg=[NAME_ROWS, shown])
    return dict(page.eval_on_selector_all(
        NAME_ROWS,
        "rows => rows.map(r => [r.getAttribute('row-id'), r.querySelector('a[href*=\"/runs/\"]').innerText])"))


def test_the_experiment_page_lists_every_run_of_every_stage(demo_dir, ui, page):
    base, printed = ui
    experiment_id, runs, uri = store_runs(demo_dir)
    url = f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    assert printed.strip() == f"MLflow UI of {uri}: {url}  (Ctrl-C stops it)"
    page.set_viewport_size({"width": VIEWPORT["width"], "height": PAGE_TOP + ROW_HEIGHT * len(runs)})
    page.goto(url)
    page.get_by_text(f"{len(runs)} matching runs").wait_for()
    listed = listed_runs(page)
    assert listed == runs
    # The stages' own runs (tag mlnb.stage) are among them, below their jobs' runs.
    with sqlite3.connect(demo_dir / "results" / "mlflow" / "mlflow.db") as store:
        stage_runs = {name for (name,) in store.execute(
            "select r.name from runs r join tags t on t.run_uuid = r.run_uuid where t.key = 'mlnb.stage'")}
    assert stage_runs and stage_runs <= set(listed.values())
    screenshot(page, demo_dir / "results" / "reports" / "ui" / "experiment.png")


def test_every_dcgan_runs_latest_sample_grid_renders(demo_dir, ui, page):
    base, _ = ui
    experiment_id, runs, _ = store_runs(demo_dir)
    datasets = workflow_section("dcgan", [demo_dir / DEMO_CONFIG], base=demo_dir / "config.yaml")["datasets"]
    assert datasets
    for dataset in datasets:
        (run_id,) = [run for run, name in runs.items() if name == f"dcgan-{dataset}"]  # gan.smk's run name
        images = demo_dir / "results" / "mlflow" / "artifacts" / run_id / "artifacts" / "images"
        grids = {int(match.group(1)): path for path in images.iterdir() if (match := STEP_IMAGE.fullmatch(path.name))}
        latest = grids[max(grids)]
        artifact = f"images/{latest.name}"
        page.goto(f"{base}/#/experiments/{experiment_id}/runs/{run_id}/artifacts/{artifact}"
                  "?workflowType=machine_learning")
        image = page.locator(f"img[alt='{artifact}']")
        image.wait_for()
        page.wait_for_function("image => image.complete && image.naturalWidth > 0", arg=image.element_handle())
        with Image.open(latest) as logged:
            assert image.evaluate("image => [image.naturalWidth, image.naturalHeight]") == list(logged.size)
        screenshot(page, demo_dir / "results" / "reports" / "ui" / f"dcgan-{dataset}.png")
