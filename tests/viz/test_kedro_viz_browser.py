"""Kedro-Viz for real: ``kedro viz build`` of a project copy, served over HTTP on 127.0.0.1 and
rendered by headless Chromium (Debian's /usr/bin/chromium driven by Playwright; no browser
download). The ``train_dimn`` graph shows every node of the pipeline, each architecture's
pipeline is one group named after its namespace, and nodes do not overlap. A screenshot is kept
as a test artifact: test-artifacts/kedro_viz_train_dimn.png.

``kedro viz run`` is checked too: it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from tests.kedro.conftest import ROOT, _copy_project

from reid_pipeline.models import list_models
from reid_pipeline.pipelines.train import create_train_pipeline

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACT = ROOT / "test-artifacts" / "kedro_viz_train_dimn.png"
# the launch flags this machine needs (no sandbox as root, no background connections)
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.is_file(),
        reason="Debian's chromium is not installed at /usr/bin/chromium "
        "(scripts/test.sh installs it: apt-get install chromium)",
    ),
]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "KEDRO_DISABLE_TELEMETRY": "true",
        "NO_ALBUMENTATIONS_UPDATE": "1",
    }


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy_project(tmp_path_factory.mktemp("viz") / "project")


@pytest.fixture(scope="module")
def site(project: Path) -> Iterator[str]:
    """``kedro viz build`` of the project copy, served on an ephemeral 127.0.0.1 port."""
    done = subprocess.run(
        [Path(sys.executable).parent / "kedro", "viz", "build"],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    build = project / "build"
    assert (build / "index.html").is_file()
    assert (build / "api" / "main").is_file()
    handler = functools.partial(_QuietHandler, directory=str(build))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh --user-data-dir
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1600, "height": 1000},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def _open(page: Any, url: str) -> list[tuple[str, str]]:
    """Load ``url``, wait for the graph, close the feature tour; (kind, label) of every node."""
    page.goto(url)
    page.wait_for_selector(".pipeline-node", timeout=60_000)
    page.wait_for_timeout(1000)  # the layout settles
    hints = page.locator(".feature-hints__close")
    if hints.count():
        hints.first.click()
        # a toast ("you can revisit these hints...") follows; keep it out of the screenshot
        toast = page.get_by_text("You can revisit these hints", exact=False)
        with contextlib.suppress(Exception):
            toast.first.wait_for(state="hidden", timeout=10_000)
    nodes = page.eval_on_selector_all(
        ".pipeline-node",
        "els => els.map(e => [e.getAttribute('class'), e.textContent.trim()])",
    )
    kinds = []
    for cls, label in nodes:
        kind = next(c.split("--")[1] for c in cls.split() if c.startswith("pipeline-node--"))
        kinds.append((kind, label))
    return kinds


def _overlapping(page: Any) -> list[tuple[str, str]]:
    boxes = []
    for node in page.locator(".pipeline-node").all():
        box = node.bounding_box()
        boxes.append((node.text_content().strip(), box))
    pairs = []
    for i, (a, p) in enumerate(boxes):
        for b, q in boxes[i + 1 :]:
            if (
                p["x"] < q["x"] + q["width"]
                and q["x"] < p["x"] + p["width"]
                and p["y"] < q["y"] + q["height"]
                and q["y"] < p["y"] + p["height"]
            ):
                pairs.append((a, b))
    return pairs


def test_train_dimn_graph_shows_its_nodes(site: str, page: Any) -> None:
    nodes = _open(page, f"{site}?pid=train_dimn&expandAllPipelines=true")
    pipeline = create_train_pipeline("dimn")
    tasks = {label for kind, label in nodes if kind == "task"}
    assert tasks == {n.name.removeprefix("dimn.") for n in pipeline.nodes}
    data = {label for kind, label in nodes if kind == "data"}
    datasets = {d for d in pipeline.datasets() if not d.startswith("params:")}
    assert data == datasets
    assert page.locator(".pipeline-list .dropdown__label").text_content().strip() == "train_dimn"
    tree = page.locator(".node-list-tree-item-row .row-text__label").all_text_contents()
    assert "dimn" in tree  # the sidebar groups the nodes under the namespace
    assert _overlapping(page) == []
    ARTIFACT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACT))
    assert ARTIFACT.stat().st_size > 20_000


@pytest.mark.parametrize("arch", list_models())
def test_each_architecture_is_one_namespace_group(site: str, page: Any, arch: str) -> None:
    """Collapsed (the default view), ``train_<arch>`` is one box named ``<arch>`` with the files
    it writes around it, every one of them namespaced by ``<arch>``."""
    nodes = _open(page, f"{site}?pid=train_{arch}&expandAllPipelines=false")
    groups = [label for kind, label in nodes if kind == "modularPipeline"]
    assert groups == [arch]
    outside = [label for kind, label in nodes if kind != "modularPipeline"]
    assert outside
    assert all(label.startswith(f"{arch}.") for label in outside), outside
    assert f"{arch}.metrics" in outside
    assert _overlapping(page) == []


def _free_port() -> int:
    """A free port below 49152: ``kedro viz run`` refuses the ephemeral range the OS hands out."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 45_000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free TCP port below 45000")


def test_kedro_viz_run_listens_on_localhost_only(project: Path, tmp_path: Path) -> None:
    port = _free_port()
    log = (tmp_path / "viz.log").open("w+")
    proc = subprocess.Popen(
        [Path(sys.executable).parent / "kedro", "viz", "run", "--no-browser", f"--port={port}"],
        cwd=project,
        env=_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        listening: list[str] = []
        while time.monotonic() < deadline and not listening:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"kedro viz run exited with {proc.returncode}:\n{log.read()[-3000:]}")
            with contextlib.suppress(psutil.Error):
                family = {proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(True))}
                listening = [
                    c.laddr.ip
                    for c in psutil.net_connections(kind="tcp")
                    if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid in family
                ]
            time.sleep(0.5)
        assert listening == ["127.0.0.1"]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(b"GET /api/main HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200")
        assert b'"name":"train_model"' in reply
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "kedro viz run serves from a child process"
        # stopping `kedro viz run` stops its server too (it used to keep listening)
        proc.terminate()
        proc.wait(timeout=30)
        _, alive = psutil.wait_procs(children, timeout=15)
        assert not alive, f"server processes left behind: {[p.pid for p in alive]}"
    finally:
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        log.close()
