"""``GET /metrics``: Prometheus text format (prometheus_client), read from the daemon's state at scrape time.

One collector, no double bookkeeping: transfers come from ``Activity``, workers and CPU from the
``Utilisation`` sampler and the pool. Metric names follow Prometheus conventions (base units,
``_total`` for counters).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from uploader.api.activity import Activity, Utilisation

if TYPE_CHECKING:
    from uploader.flow import Budget

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class DaemonCollector(Collector):
    def __init__(
        self,
        activity: Activity,
        utilisation: Utilisation,
        workers: Callable[[], int],
        worker_busy_s: Callable[[], Mapping[int, float]],
        requests: Mapping[tuple[str, int], int],
        servers: Callable[[], Mapping[str, Budget | None]] | None = None,
    ) -> None:
        self.activity = activity
        self.utilisation = utilisation
        self.workers = workers
        self.worker_busy_s = worker_busy_s
        self.requests = requests
        self.servers = servers

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        done = CounterMetricFamily(
            "uploader_transfers", "Finished uploads and downloads by result", labels=["kind", "result"]
        )
        for (kind, result), n in sorted(self.activity.totals.items()):
            done.add_metric([kind, result], n)
        yield done
        nbytes = CounterMetricFamily(
            "uploader_transferred_bytes", "File bytes of successful uploads and downloads", labels=["kind"]
        )
        for kind, n in sorted(self.activity.bytes.items()):
            nbytes.add_metric([kind], n)
        yield nbytes
        active = GaugeMetricFamily(
            "uploader_active_transfers", "Uploads and downloads in progress", labels=["kind"]
        )
        for kind in ("upload", "download"):
            active.add_metric([kind], self.activity.count(kind))
        yield active
        yield GaugeMetricFamily("uploader_workers", "Live worker processes", value=self.workers())
        busy = CounterMetricFamily(
            "uploader_worker_busy_seconds", "Seconds each worker spent on jobs", labels=["worker"]
        )
        for index, seconds in sorted(self.worker_busy_s().items()):
            busy.add_metric([str(index)], seconds)
        yield busy
        util = GaugeMetricFamily(
            "uploader_worker_utilisation",
            "Fraction of the last interval each worker was busy",
            labels=["worker"],
        )
        for index, fraction in sorted(self.utilisation.workers.items()):
            util.add_metric([str(index)], fraction)
        yield util
        yield GaugeMetricFamily(
            "uploader_network_process_utilisation",
            "CPU seconds per second of the network process over the last interval",
            value=self.utilisation.network,
        )
        reqs = CounterMetricFamily(
            "uploader_http_requests", "API requests answered", labels=["route", "status"]
        )
        for (name, status), n in sorted(self.requests.items()):
            reqs.add_metric([name, str(status)], n)
        yield reqs
        if self.servers is not None:
            yield from self._servers(self.servers())

    @staticmethod
    def _servers(flow: Mapping[str, Budget | None]) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """Per storage server (host:port), across every upload so far: the status page's figures."""
        sent = CounterMetricFamily(
            "uploader_server_sent_bytes", "Share bytes the server acknowledged", labels=["server"]
        )
        writes = CounterMetricFamily("uploader_server_writes", "Acknowledged writes", labels=["server"])
        write_s = CounterMetricFamily(
            "uploader_server_write_seconds", "Summed round trips of acknowledged writes", labels=["server"]
        )
        failed = CounterMetricFamily(
            "uploader_server_write_failures", "Write attempts that failed", labels=["server"]
        )
        flight = GaugeMetricFamily(
            "uploader_server_in_flight_bytes", "Bytes sent and not yet acknowledged", labels=["server"]
        )
        for name, b in sorted(flow.items()):
            sent.add_metric([name], b.bytes_sent if b else 0)
            writes.add_metric([name], b.writes if b else 0)
            write_s.add_metric([name], b.write_s if b else 0.0)
            failed.add_metric([name], b.failures if b else 0)
            flight.add_metric([name], b.in_flight if b else 0)
        yield from (sent, writes, write_s, failed, flight)


def registry_for(collector: DaemonCollector) -> CollectorRegistry:
    """A registry of its own (not the global one), plus the standard process metrics."""
    from prometheus_client import ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


__all__ = ["CONTENT_TYPE", "DaemonCollector", "registry_for", "render"]
