"""Prometheus metrics (prometheus-client), one registry per server so several
servers in one process (tests) never share counters. Scraped at GET /metrics."""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


class RateLimitCounts(Protocol):
    """What the limiter (cyberhub/platform/ratelimit.py) counts itself."""

    refusals: Mapping[str, int]
    fallback_checks: int


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def event_family(event: str) -> str:
    """`balance:updated:<userId>` -> `balance:updated`: user ids are not labels."""
    parts = event.split(":")
    return ":".join(parts[:2]) if len(parts) > 2 else event


# Event-loop stalls and GC pauses: what the operator needs to see is whether
# anything approaches 50 ms, and how bad the worst ones are.
# Request metrics' (method, route, status) children kept for reuse, at most.
MAX_CACHED_CHILDREN = 2048

PAUSE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class Metrics:
    def __init__(self, connected_sockets: Callable[[], int],
                 socket_deliveries: Callable[[], dict[str, int]] | None = None,
                 rate_limits: RateLimitCounts | None = None,
                 lost_relays: Callable[[], int] | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("cyberhub_http_requests_total", "HTTP requests handled",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("cyberhub_http_request_duration_seconds", "HTTP request latency",
                                 ["method", "route"], registry=r,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self._request_children: dict[tuple[str, str, int], tuple] = {}
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
        self.live_feed_skipped = Counter("cyberhub_live_feed_skipped_total",
                                         "Feed broadcasts skipped by LIVE_FEED_MAX_PER_SECOND", registry=r)
        self.loop_lag = Histogram("cyberhub_event_loop_lag_seconds",
                                  "How late the event loop ran a 10 ms timer (a stall of S s: at least S - 0.01 s)",
                                  registry=r, buckets=PAUSE_BUCKETS)
        self.gc_pause = Histogram("cyberhub_gc_pause_seconds", "Garbage collection pauses", ["generation"],
                                  registry=r, buckets=PAUSE_BUCKETS)
        # What gc.freeze() has moved out of the collector's reach (cyberhub/realtime/loopmonitor.py): it
        # follows the connected sockets; steady growth with a steady socket count would be a leak.
        self.gc_frozen = Gauge("cyberhub_gc_frozen_objects", "Objects frozen out of garbage collection",
                               registry=r)
        self.gc_frozen.set_function(gc.get_freeze_count)
        if socket_deliveries is not None:
            r.register(_DeliveryCollector(socket_deliveries))
        if rate_limits is not None:
            r.register(_RateLimitCollector(rate_limits))
        if lost_relays is not None:
            r.register(_CountCollector("cyberhub_relay_lost", "Events that could not be relayed to the other "
                                       "processes (Redis unreachable): only this process's sockets got them",
                                       lost_relays))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        # The labelled children are looked up once per (method, route, status):
        # prometheus_client's labels() validates and locks on every call, which
        # was most of the metrics' per-request cost.
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (self.requests.labels(method, route, str(status)), self.latency.labels(method, route))
            if len(self._request_children) < MAX_CACHED_CHILDREN:  # odd methods must not grow it forever
                self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def emitted(self, event: str) -> None:
        self.events.labels(event_family(event)).inc()

    def observe_gc(self, generation: int, seconds: float) -> None:
        self.gc_pause.labels(str(generation)).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _DeliveryCollector(Collector):
    """Socket.IO event deliveries by path, read from the client manager's counts
    (cyberhub/realtime/fanout.py): `fast` = frame written straight to a websocket,
    `queued` = through engine.io's queue (polling, upgrading, packets pending)."""

    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def collect(self):  # type: ignore[no-untyped-def]
        family = CounterMetricFamily("cyberhub_socket_deliveries", "Socket.IO event deliveries by path",
                                     labels=["path"])
        for path, value in self._counts().items():
            family.add_metric([path], value)
        yield family


class _RateLimitCollector(Collector):
    """Every refusal by every limit, labelled by its rule (the RATE_LIMIT_*
    setting's name without the prefix: `open_per_user`, `login_failures`,
    `webhook_forged_per_ip`, `socket_events`, ...), read from the limiter
    itself so that no refusal path can forget to count; and the checks its
    shared store (Redis) could not answer."""

    def __init__(self, limiter: RateLimitCounts) -> None:
        self._limiter = limiter

    def collect(self):  # type: ignore[no-untyped-def]
        refused = CounterMetricFamily("cyberhub_rate_limited", "Requests and socket events refused by a rate limit",
                                      labels=["rule"])
        for rule, value in sorted(self._limiter.refusals.items()):
            refused.add_metric([rule], value)
        yield refused
        yield CounterMetricFamily("cyberhub_rate_limit_fallback",
                                  "Rate-limit checks the shared store (Redis) failed; answered by this "
                                  "process's own counters", value=self._limiter.fallback_checks)


class _CountCollector(Collector):
    """One unlabelled counter read from a callable at scrape time."""

    def __init__(self, name: str, documentation: str, count: Callable[[], int]) -> None:
        self._name, self._doc, self._count = name, documentation, count

    def collect(self):  # type: ignore[no-untyped-def]
        yield CounterMetricFamily(self._name, self._doc, value=self._count())
