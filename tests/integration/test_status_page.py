"""The status page end to end: a real daemon on a real local grid, driven by headless Chromium.

Debian's ``chromium`` and ``chromium-driver`` (installed by ``make test``'s ``browser`` step) through
Selenium's WebDriver client with the system browser and driver — nothing is downloaded. The test
uploads a file through the page's form, watches the progress reach 100 %, reads the cap (the one the
`cap` command computes, and the file downloads with it), checks the chart has points for every
worker and server, and saves a screenshot (under ``$TEST_ARTIFACTS``, else ``.cache/test-artifacts``).
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.conftest import REPO, cache_dir
from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.localgrid import LocalGrid
from uploader.chk.caps import ChkCap, parse_read_cap
from uploader.daemon import WORKER_NICE
from workers.base32 import b32encode

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SERVERS = 5
WORKERS = 2
T = TypeVar("T")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    with LocalGrid(tmp_path_factory.mktemp("grid"), servers=SERVERS) as grid:
        work = tmp_path_factory.mktemp("daemon")
        (work / "data").mkdir()
        config = write_config(
            grid.dir / "uploader.toml",
            work / "uploader.toml",
            api_listen="127.0.0.1:0",
            workers=WORKERS,
            shares_needed=3,
            shares_total=SERVERS,
            shares_happy=4,
            window=4,
            data_dir=work / "data",
        )
        d = DaemonProcess(config, work)
        d.start()
        try:
            yield d
        finally:
            assert d.stop() == 0
        assert "URI:CHK:" not in d.log()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    for path in (CHROMIUM, CHROMEDRIVER):
        assert path.exists(), (
            f"{path} is missing: `make browser` installs Debian's chromium and chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,2200"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _until(what: str, check: Callable[[], T | None], timeout_s: float = 60.0, every_s: float = 0.05) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what}")


# Read in one script: the page redraws its tables and chart each second.
CHART_JS = """
const chart = document.getElementById("chart");
const series = {workers: {}, servers: {}};
for (const line of chart.querySelectorAll("polyline")) {
  const points = line.getAttribute("points").trim().split(/\\s+/).length;
  if (line.classList.contains("network")) { series.network = points; continue; }
  const group = line.classList.contains("workers") ? "workers" : "servers";
  series[group][line.dataset.key] = points;
}
series.worker_points = Number(chart.dataset.workerPoints || 0);
series.server_points = Number(chart.dataset.serverPoints || 0);
return series;
"""


def _row_text(driver: WebDriver, needle: str) -> str | None:
    rows: list[str] = driver.execute_script(
        "return [...document.querySelectorAll('#transfers tbody tr')].map(r => r.innerText)"
    )
    return next((r for r in rows if needle in r), None)


def _text(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def _daemon_env(daemon: DaemonProcess) -> dict[str, str]:
    """The environment the daemon ran in, so `cap` finds the same convergence secret."""
    env = {**os.environ, "HOME": str(daemon.workdir)}
    env.pop("XDG_CONFIG_HOME", None)
    return env


def _cap_command(daemon: DaemonProcess, path: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "uploader", "cap", str(path), "--config", str(daemon.config), "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=_daemon_env(daemon),
    )
    assert out.returncode == 0, out.stderr
    line: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    return str(line["cap"])


def test_page_is_ours_and_served_with_its_files(daemon: DaemonProcess) -> None:
    code, headers, body = daemon.request("GET", "/")
    assert b"/static/status.js" in body
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    code, headers, js = daemon.request("GET", "/static/status.js")
    assert code == 200 and headers["Content-Type"].startswith("text/javascript") and b"/status" in js
    assert daemon.request("GET", "/static/status.js", headers={"If-None-Match": headers["ETag"]})[0] == 304
    assert daemon.request("GET", "/static/missing.js")[0] == 404
    code, _, hist = daemon.request("GET", "/status/history")
    assert code == 200 and set(json.loads(hist)) >= {"t", "workers", "servers", "last_seq"}


def _workers_of(pid: int) -> list[int]:
    """The daemon's worker processes (children running ``workers.boot``)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            if b"workers.boot" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(int(child))
    return found


def test_workers_run_nicer_than_the_daemon(daemon: DaemonProcess) -> None:
    """So /status and the network process get the CPU first when it is short."""
    workers = _workers_of(daemon.pid)
    assert len(workers) == WORKERS
    base = os.getpriority(os.PRIO_PROCESS, daemon.pid)
    assert [os.getpriority(os.PRIO_PROCESS, w) for w in workers] == [min(19, base + WORKER_NICE)] * WORKERS


def test_upload_through_the_page(daemon: DaemonProcess, browser: WebDriver, tmp_path: Path) -> None:
    src = tmp_path / "holiday photos.bin"
    src.write_bytes(random.Random(11).randbytes(12 * 1024 * 1024 + 5))
    browser.get(daemon.url + "/")
    _until("the page's first poll", lambda: _text(browser, "live") == "live")
    configured = {
        dd.get_attribute("data-key"): dd.text for dd in browser.find_elements(By.CSS_SELECTOR, "#config dd")
    }
    assert configured["workers"] == str(WORKERS) and configured["shares_total"] == str(SERVERS)
    assert configured["shares_needed"] == "3" and configured["shares_happy"] == "4"
    assert {"max_segment_size", "pipeline_depth", "erasure_backend"} <= set(configured)
    assert configured["erasure_backend"].split()[0] in ("isal", "zfec")  # the one in use, not "auto"

    # the chart's first point: the history's baseline was read before this upload started
    _until("the chart's first points", lambda: browser.execute_script(CHART_JS)["worker_points"], 30)
    browser.find_element(By.ID, "upload-file").send_keys(str(src))
    browser.find_element(By.ID, "upload-button").click()
    seen: list[str] = []

    def finished() -> bool:
        percent = _text(browser, "upload-percent")
        if not seen or seen[-1] != percent:
            seen.append(percent)
        return browser.find_element(By.ID, "upload-result").is_displayed() or bool(
            _text(browser, "upload-error")
        )

    _until("the upload to finish", finished, timeout_s=120)
    seen.append(_text(browser, "upload-percent"))
    assert not browser.find_element(By.ID, "upload-error").is_displayed(), _text(browser, "upload-error")
    assert seen[-1] == "100%" and _text(browser, "upload-stage").startswith("done"), seen
    cap = browser.find_element(By.ID, "upload-cap").get_attribute("value") or ""
    assert cap == _cap_command(daemon, src)
    parsed = parse_read_cap(cap)
    assert isinstance(parsed, ChkCap) and parsed.size == src.stat().st_size
    href = browser.find_element(By.ID, "upload-download").get_attribute("href") or ""
    code, _, body = daemon.request("GET", "/uri/" + unquote(href.rsplit("/uri/", 1)[1]).replace(":", "%3A"))
    assert code == 200 and body == src.read_bytes()

    # The shared list names the file and its storage index, never the cap.
    si = b32encode(parsed.storage_index)
    row = _until("the upload's row", lambda: _row_text(browser, "holiday photos.bin"))
    assert si in row and "\tdone\t" in row and "100%" in row and "12.0 MiB" in row, row
    code, _, status = daemon.request("GET", "/status")
    assert code == 200 and cap.encode() not in status and si.encode() in status
    # the page followed its own upload in /status by the tag it sent (its row is marked as ours)
    mine = browser.execute_script(
        "return [...document.querySelectorAll('#transfers tbody tr.mine')].map(r => r.innerText)"
    )
    assert len(mine) == 1 and "holiday photos.bin" in mine[0], mine
    ours = [t for t in json.loads(status)["transfers"]["recent"] if t["kind"] == "upload"]
    assert len(ours) == 1 and ours[0]["tag"].startswith("page-") and ours[0]["name"] == src.name
    assert ours[0]["storage_index"] == si and ours[0]["progress"] == 1.0

    # The chart: one series per worker and per server, with points (the upload kept them all busy).
    def chart() -> dict[str, Any] | None:
        drawn: dict[str, Any] = browser.execute_script(CHART_JS)
        full = len(drawn["workers"]) == WORKERS and len(drawn["servers"]) == SERVERS
        return drawn if full else None

    drawn = _until("a chart with every worker and server", chart, timeout_s=30)
    assert all(n >= 1 for n in [*drawn["workers"].values(), *drawn["servers"].values()]), drawn
    assert drawn["worker_points"] >= WORKERS and drawn["server_points"] >= SERVERS
    assert drawn["network"] >= 1  # the network process's CPU, dashed, on the workers' panel
    # What the chart draws is the daemon's history: the ticks after the upload began saw the workers
    # busy and, added up, every byte of the shares (N/k times the file, and the hashes) sent.
    shares = src.stat().st_size * SERVERS // 3

    def sent_in_history() -> dict[str, Any] | None:
        hist: dict[str, Any] = json.loads(daemon.request("GET", "/status/history")[2])
        t = hist["t"]
        sent = sum(
            (series[i] or 0) * (t[i] - t[i - 1])
            for series in hist["servers"].values()
            for i in range(1, len(t))
        )
        busy = any(v for series in hist["workers"].values() for v in series if v)
        return hist if busy and sent >= shares * 0.99 else None

    _until("the upload's bytes and work in the history", sent_in_history, timeout_s=15)
    # the same counters for Prometheus
    metrics = daemon.request("GET", "/metrics")[2].decode()
    counted = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("uploader_server_sent_bytes_total{")
    ]
    assert len(counted) == SERVERS and sum(counted) >= shares, metrics
    assert metrics.count("uploader_server_write_failures_total{") == SERVERS

    def servers_with_latency() -> list[str] | None:
        rows: list[str] = browser.execute_script(
            "return [...document.querySelectorAll('#servers tbody tr')].map(r => r.innerText)"
        )
        return rows if len(rows) == SERVERS and all(" ms\t" in r for r in rows) else None

    servers = _until("every server's write latency", servers_with_latency, timeout_s=10)
    assert all("\tconnected\t" in r and r.endswith("MiB") for r in servers), servers

    artifacts = Path(os.environ.get("TEST_ARTIFACTS") or cache_dir() / "test-artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "status-page.png"
    browser.execute_script("window.scrollTo(0, 0)")
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    print(f"status page screenshot: {shot}")


def test_a_failed_upload_shows_its_error_in_words(daemon: DaemonProcess, browser: WebDriver) -> None:
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=30) as sock:
        sock.sendall(b"PUT /uri HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
        sock.shutdown(socket.SHUT_WR)  # the client goes away 1000 bytes in
        sock.recv(4096)
    browser.get(daemon.url + "/")
    row = _until("the failed upload's row", lambda: _row_text(browser, "ended early"), timeout_s=30)
    assert "\tfailed\t" in row and "the request body ended early after 1000 bytes" in row, row
    assert "97.7 KiB" in row and "1000 B" in row  # the size it declared, the bytes that came
