"""What one client may cost the server, counted and logged without letting
the client write the log.

`SocketGuard` is the one place the realtime layer reports a client it
refused or disconnected: a counter per reason (exported in /metrics as
`cyberhub_socket_refusals_total{reason}`) and at most one log line per
socket and reason. Reasons:

- `send_buffer_full`: more than SOCKET_MAX_PENDING_BYTES waiting to be sent
  to a client that does not read (cyberhub/realtime/pending.py);
- `bad_packet`: an engine.io or Socket.IO packet that does not decode, or is
  not one a client may send (cyberhub/realtime/badinput.py);
- `identify_refused`: a refused or rate-limited `user:identify`;
- `per_address`, `server_full`: a new session past SOCKET_MAX_PER_ADDRESS /
  SOCKET_MAX_CONNECTIONS (cyberhub/realtime/admission.py);
- `fd_reserve`: a connection accepted and closed at once because the
  process is near its open-file limit (cyberhub/server/listener.py counts
  into the same guard).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("cyberhub.realtime.guard")

REASONS = ("send_buffer_full", "bad_packet", "identify_refused", "per_address", "server_full", "fd_reserve",
           "fd_exhausted")


class SocketGuard:
    """Counters and once-per-socket logging for refused clients."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter({reason: 0 for reason in REASONS})
        # (sid, reason) pairs already logged; forgotten when the socket goes
        # (`forget`), so the set is bounded by the live sockets.
        self._logged: set[tuple[str, str]] = set()

    def count(self, reason: str, n: int = 1) -> None:
        self.counts[reason] += n

    def report(self, sid: str, reason: str, message: str, *args: object) -> None:
        """Counts one refusal; logs it only the first time for this socket."""
        self.counts[reason] += 1
        if (sid, reason) in self._logged:
            return
        self._logged.add((sid, reason))
        log.warning("⛔ Socket %s: " + message, sid, *args)

    def forget(self, sid: str) -> None:
        for reason in REASONS:
            self._logged.discard((sid, reason))


class GuardCollector(Collector):
    """`cyberhub_socket_refusals_total{reason}` from a SocketGuard."""

    def __init__(self, guard: SocketGuard) -> None:
        self.guard = guard

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("cyberhub_socket_refusals", "Socket connections refused or disconnected "
                                     "by the server's per-client limits, by reason", labels=["reason"])
        for reason, n in sorted(self.guard.counts.items()):
            family.add_metric([reason], n)
        yield family
