"""`python -m api.ops.serve` with WEB_CONCURRENCY=2: whichever worker answers a scrape, it
shows the sum over both (prometheus_client's multiprocess mode), and a worker that died
leaves its counts in the sum but its live gauges out of it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import AppProcess, start_app

pytestmark = pytest.mark.e2e

REQUESTS = 60


def scrape(app: AppProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{app.base_url}/metrics", timeout=10)
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def health_count(scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
    labels = (("method", "GET"), ("route", "/health"), ("status", "200"))
    return scraped.get(("marketedge_http_request_duration_seconds_count", labels), 0.0)


def worker_pids(directory: Path) -> set[int]:
    return {int(f.stem.rsplit("_", 1)[1]) for f in directory.glob("histogram_*.db")}


@pytest.fixture(name="two_workers")
def fx_two_workers(database: str, tmp_path: Path) -> Iterator[tuple[AppProcess, Path]]:
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"left over from a previous run")
    app = start_app(
        database,
        {"WEB_CONCURRENCY": "2", "PROMETHEUS_MULTIPROC_DIR": str(directory)},
        timeout=60,
    )
    yield app, directory
    app.stop()


def test_two_workers_scrapes_add_up_and_a_dead_worker_keeps_its_counts(
    two_workers: tuple[AppProcess, Path],
) -> None:
    app, directory = two_workers
    assert not (directory / "counter_1.db").exists()  # the directory starts empty
    deadline = time.monotonic() + 30
    while len(worker_pids(directory)) < 2 and time.monotonic() < deadline:
        assert httpx.get(f"{app.base_url}/health").status_code == 200  # a new connection each
    assert len(worker_pids(directory)) == 2, "both workers must have served"
    before = health_count(scrape(app))
    for _ in range(REQUESTS):  # new connections: the kernel spreads them over both workers
        assert httpx.get(f"{app.base_url}/health").status_code == 200
    for _ in range(4):  # any worker's answer shows the sum
        assert health_count(scrape(app)) == before + REQUESTS

    deadline = time.monotonic() + 30
    while scrape(app).get(("marketedge_listener_connected", ()), 0) != 1:
        assert time.monotonic() < deadline, "both listeners should connect"
        time.sleep(0.2)
    victim = min(worker_pids(directory))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:  # uvicorn starts a replacement; the dead one's live gauges leave the sum
        try:
            scraped = scrape(app)
        except httpx.HTTPError:
            scraped = {}
        pids = {int(f.stem.rsplit("_", 1)[1]) for f in directory.glob("gauge_live*.db")}
        if scraped and victim not in pids and scraped.get(("marketedge_listener_connected", ())):
            break
        assert time.monotonic() < deadline, f"live gauges of {victim} stayed: {pids}"
        time.sleep(0.2)
    assert health_count(scraped) >= before + REQUESTS  # the dead worker's counts remain
