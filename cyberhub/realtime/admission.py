"""SOCKET_MAX_PER_ADDRESS and SOCKET_MAX_CONNECTIONS: how many engine.io
sessions one client address, and the whole process, may hold.

The address is the request's `remote_ip`: Tornado's, which follows
TRUST_PROXY_HEADERS (X-Forwarded-For / X-Real-Ip behind a proxy) exactly as
for REST rate limits (cyberhub/server/lifecycle.py sets `xheaders`).

Live sessions (engine.io's `sockets`) and handshakes in flight both count:
- `reserve(address)` before engine.io sees a request that would open a new
  session: past a limit the Tornado handler answers 429 / 503 with the
  error envelope (no session, nothing allocated) — socket.io-client reports
  it as a `connect_error` and retries with its reconnection back-off; else
  the handshake holds a reservation until it becomes a session or its request
  ends (`release`), so concurrent handshakes cannot overshoot;
- `admit(sid, address)` in engine.io's `connect` event, atomically with the
  session's creation, checks again (a last guard: engine.io answers 401 with
  the envelope).
A session counts until engine.io forgets it; `forget` on its `disconnect`
event, and a session found gone when its address is next checked.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from cyberhub.platform.errors import PayloadTooLarge
from cyberhub.platform.validation import declared_length

if TYPE_CHECKING:
    from tornado.httputil import HTTPServerRequest

Refusal = tuple[int, str, str]  # status, message, code: the error envelope's parts


class Admission:
    def __init__(self, sessions: Callable[[], dict], *, per_address: int, total: int) -> None:
        self._sessions = sessions  # engine.io's live table, looked up each time (tests replace it)
        self.per_address = per_address  # 0 = no limit
        self.total = total  # 0 = no limit
        self._by_address: dict[str, set[str]] = {}
        self._address_of: dict[str, str] = {}
        self._reserved: dict[str, int] = {}  # handshakes in flight per address
        self._reserved_total = 0

    def _live(self, address: str) -> set[str]:
        sids = self._by_address.get(address)
        if not sids:
            return set()
        sessions = self._sessions()
        for sid in [sid for sid in sids if sid not in sessions or sessions[sid].closed]:
            self.forget(sid)
        return self._by_address.get(address, set())

    def refusal(self, address: str, *, pending: int = 0) -> str | None:
        """'per_address' / 'server_full' if a new session from `address` is
        over a limit (`pending`: sessions already made but not yet admitted)."""
        if self.total and len(self._sessions()) - pending + self._reserved_total >= self.total:
            return "server_full"
        if self.per_address and len(self._live(address)) + self._reserved.get(address, 0) >= self.per_address:
            return "per_address"
        return None

    def reserve(self, address: str) -> str | None:
        """A handshake from `address` starts: a reservation, or why not."""
        refusal = self.refusal(address)
        if refusal is None:
            self._reserved[address] = self._reserved.get(address, 0) + 1
            self._reserved_total += 1
        return refusal

    def release(self, address: str) -> None:
        """The handshake's reservation ends (it became a session, or failed)."""
        left = self._reserved.get(address, 0) - 1
        if left < 0:
            return
        self._reserved_total -= 1
        if left:
            self._reserved[address] = left
        else:
            del self._reserved[address]

    def admit(self, sid: str, address: str) -> str | None:
        """Records `sid` (already in the table) for `address`, or says why not."""
        refusal = self.refusal(address, pending=1)
        if refusal is None:
            self._by_address.setdefault(address, set()).add(sid)
            self._address_of[sid] = address
        return refusal

    def forget(self, sid: str) -> None:
        address = self._address_of.pop(sid, None)
        if address is None:
            return
        sids = self._by_address.get(address)
        if sids is not None:
            sids.discard(sid)
            if not sids:
                del self._by_address[address]


MESSAGES = {
    "per_address": (429, "Too many connections from this address; try again later", "too_many_connections"),
    "server_full": (503, "The server is at its connection limit; try again later", "server_full"),
}


def envelope(reason: str) -> tuple[int, dict]:
    status, message, code = MESSAGES[reason]
    return status, {"success": False, "error": message, "code": code}


def too_large(limit: int) -> Refusal:
    """A body over SOCKET_MAX_BUFFER_BYTES, declared or streamed."""
    return 413, PayloadTooLarge().message + f" (Socket.IO limit: {limit} bytes)", "payload_too_large"


def check_before_body(reserve: Callable[[HTTPServerRequest], tuple[str | None, str | None]] | None,
                      request: HTTPServerRequest, limit: int) -> tuple[str | None, Refusal | None]:
    """What both Socket.IO entry points (cyberhub/realtime/polling.py for polling
    requests, engineio_handler.py for websocket upgrades) check before a body
    arrives: the session limits (`reserve`, FastAsyncManager.reserve_handshake,
    when the manager keeps them), then the declared Content-Length. Returns the
    address now reserved, which the caller releases once the handshake became a
    session or ended, and the refusal to answer with, if any."""
    address = None
    if reserve is not None:
        address, reason = reserve(request)
        if reason is not None:
            return None, MESSAGES[reason]
    try:
        length = declared_length(request.headers.get("Content-Length"))
    except ValueError as exc:
        return address, (400, str(exc), "invalid_content_length")
    if length is not None and length > limit:
        return address, too_large(limit)
    return address, None
