"""Accepting connections when file descriptors run short, without spinning.

Tornado's accept loop (`tornado.netutil.add_accept_handler`, used by
`TCPServer.add_sockets`) lets `accept()`'s EMFILE ("Too many open files")
escape: the listening socket stays readable, so the loop calls it again at
once — ~100 % CPU, a traceback per call (10 MB/s of log) and no answer to
anyone, /health included, until connections go.

`GuardedHTTPServer.add_sockets` (TCPServer's documented way in, overridden)
registers `guarded_accept_handler` instead, which:
- keeps a reserve (FD_RESERVE descriptors, for the database, Redis, log
  files): a connection whose descriptor number reaches `limit − reserve` is
  closed at once (accept-and-close: the client sees its connection end
  instead of hanging in the backlog). `accept()` returns the lowest free
  descriptor, so a number that high means every lower one is in use;
- on EMFILE/ENFILE/ENOBUFS/ENOMEM anyway (descriptors taken by something
  else) stops accepting for PAUSE_SECONDS, then resumes by itself;
- logs at most one line per LOG_INTERVAL_SECONDS (with how many it refused
  meanwhile) and counts every refusal (`cyberhub_socket_refusals_total`,
  reasons `fd_reserve` / `fd_exhausted`).

LIBRARY INTERNALS RELIED ON (tornado 6.6.1; tests/test_fanout_internals.py
fails if they change): `TCPServer.add_sockets` fills `_sockets[fd]` and
`_handlers[fd]` (the remove function `stop()` calls) and hands each accepted
socket to `_handle_connection(connection, address)`.
"""

from __future__ import annotations

import errno
import logging
import resource
import socket
from collections.abc import Callable, Iterable

import tornado.httpserver
from tornado.ioloop import IOLoop

log = logging.getLogger("cyberhub.server.listener")

FD_RESERVE = 64  # descriptors kept for everything that is not a client connection
PAUSE_SECONDS = 0.5
LOG_INTERVAL_SECONDS = 10.0
# Connections taken per readiness of the listening socket (Tornado takes 128). In a
# reconnect storm each accepted connection starts a request at once; 32 at a time
# keeps fewer half-served connections alive together, so the collector has less to
# walk: 5,000-client storms spent 0.9–1.25 s in collections instead of 1.3–1.9 s and
# settled in 9.1–10.2 s instead of 9.9–13.0 s (bench/README.md, issue 18).
ACCEPTS_PER_EVENT = 32
OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


def open_file_limit() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


class FdGuard:
    """The reserve rule, the refusal counter and the rate-limited log line."""

    def __init__(self, count: Callable[[str], None] | None = None, *, reserve: int = FD_RESERVE,
                 limit: int | None = None) -> None:
        self.limit = open_file_limit() if limit is None else limit
        self.reserve = reserve
        self._count = count
        self._last_log: float | None = None
        self._unlogged = 0

    def too_high(self, conn: socket.socket) -> bool:
        return self.limit is not None and conn.fileno() >= self.limit - self.reserve

    def refused(self, reason: str) -> None:
        if self._count is not None:
            self._count(reason)
        self._unlogged += 1
        now = IOLoop.current().time()
        if self._last_log is None or now - self._last_log >= LOG_INTERVAL_SECONDS:
            log.warning("⛔ Near the open-file limit (ulimit -n %s, %d kept in reserve): %d new connection(s) "
                        "refused since the last such line (%s); see docs/OPERATIONS.md",
                        self.limit, self.reserve, self._unlogged, reason)
            self._last_log = now
            self._unlogged = 0


def guarded_accept_handler(sock: socket.socket, callback: Callable[[socket.socket, object], None],
                           guard: FdGuard) -> Callable[[], None]:
    """`tornado.netutil.add_accept_handler` with the reserve and the pause
    (module docstring). Returns the function that stops accepting."""
    io_loop = IOLoop.current()
    removed = False
    paused = None

    def accept_handler(fd: object, events: int) -> None:
        for _ in range(ACCEPTS_PER_EVENT):
            if removed:
                return
            try:
                connection, address = sock.accept()
            except BlockingIOError:
                return  # every waiting connection taken
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno not in OUT_OF_DESCRIPTORS:
                    raise
                guard.refused("fd_exhausted")
                pause()
                return
            if guard.too_high(connection):
                connection.close()
                guard.refused("fd_reserve")
                continue
            callback(connection, address)

    def pause() -> None:
        nonlocal paused
        io_loop.remove_handler(sock)
        paused = io_loop.call_later(PAUSE_SECONDS, resume)

    def resume() -> None:
        nonlocal paused
        paused = None
        if not removed:
            io_loop.add_handler(sock, accept_handler, IOLoop.READ)

    def remove_handler() -> None:
        nonlocal removed
        if paused is not None:
            io_loop.remove_timeout(paused)
        else:
            io_loop.remove_handler(sock)
        removed = True

    io_loop.add_handler(sock, accept_handler, IOLoop.READ)
    return remove_handler


class GuardedHTTPServer(tornado.httpserver.HTTPServer):
    """HTTPServer whose accept loop keeps the descriptor reserve."""

    fd_guard: FdGuard | None = None  # set by the owner before add_sockets

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        guard = self.fd_guard or FdGuard()
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = guarded_accept_handler(sock, self._handle_connection, guard)
