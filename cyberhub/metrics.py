"""Prometheus metrics (prometheus-client), one registry per server so several
servers in one process (tests) never share counters. Scraped at GET /metrics."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def event_family(event: str) -> str:
    """`balance:updated:<userId>` -> `balance:updated`: user ids are not labels."""
    parts = event.split(":")
    return ":".join(parts[:2]) if len(parts) > 2 else event


class Metrics:
    def __init__(self, connected_sockets: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("cyberhub_http_requests_total", "HTTP requests handled",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("cyberhub_http_request_duration_seconds", "HTTP request latency",
                                 ["method", "route"], registry=r,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.sockets = Gauge("cyberhub_sockets_connected", "Socket.IO connections to this process", registry=r)
        self.sockets.set_function(connected_sockets)
        self.events = Counter("cyberhub_socket_events_emitted_total", "Socket.IO events emitted", ["event"],
                              registry=r)
        self.cases_opened = Counter("cyberhub_cases_opened_total", "Cases opened", registry=r)
        self.payments_credited = Counter("cyberhub_payments_credited_total", "Payments credited", registry=r)
        self.payments_amount = Counter("cyberhub_payments_credited_amount_total",
                                       "Sum of credited payments, minor units", registry=r)
        self.items_sold = Counter("cyberhub_items_sold_total", "Items sold back", registry=r)
        self.recovery_actions = Counter("cyberhub_recovery_actions_total",
                                        "Interrupted operations repaired by recovery", ["action"], registry=r)
        self.rate_limited = Counter("cyberhub_rate_limited_total", "Requests refused with 429", ["route"],
                                    registry=r)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def emitted(self, event: str) -> None:
        self.events.labels(event_family(event)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
