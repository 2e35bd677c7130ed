"""Socket.IO broadcast fan-out and per-socket memory of the CyberHub backend.

For each --clients size: starts a fresh `python run.py` on a free 127.0.0.1 port,
connects that many python-socketio AsyncClients over websocket, then --rounds
times creates a case as admin (the server emits `cases:updated` to everyone after
the write) and measures how long until the last client has received it. Reports
the median over rounds, and the server's RSS (VmRSS) before and after connecting.

    python bench/socket_fanout.py --clients 500 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from dataclasses import dataclass, field

import aiohttp
import harness
import socketio
from harness import Server


@dataclass
class Round:
    http_ms: float  # POST /api/admin/cases round trip (the emit is awaited inside it)
    first_ms: float
    median_ms: float
    last_ms: float
    received: int


@dataclass
class SizeResult:
    clients: int
    connected: int
    connect_s: float
    rss_before_kib: int
    rss_connected_kib: int
    rss_after_kib: int
    health_clients: int
    rounds: list[Round] = field(default_factory=list)

    @property
    def per_socket_kib(self) -> float:
        return (self.rss_connected_kib - self.rss_before_kib) / max(1, self.connected)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, nargs="+", default=[500],
                   help="websocket clients; several sizes run one after another, each on a fresh server")
    p.add_argument("--rounds", type=int, default=5, help="broadcasts per size (default 5)")
    p.add_argument("--connect-concurrency", type=int, default=50, help="handshakes in flight while connecting")
    p.add_argument("--round-timeout", type=float, default=60.0, help="seconds to wait for every client per round")
    p.add_argument("--token", action="store_true",
                   help="connect with a user's JWT (auth: {token}) instead of anonymously")
    args = p.parse_args(argv)
    if min(args.clients) < 1 or max(args.clients) > 9000 or not 1 <= args.rounds <= 50:
        p.error("--clients must be 1..9000 (file descriptors) and --rounds 1..50")
    return args


class Fleet:
    """K socket.io clients that timestamp each `cases:updated` they receive."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.clients: list[socketio.AsyncClient] = []
        self.stamps: list[float] = []
        self.expected = 0
        self.all_in = asyncio.Event()

    def _new_client(self) -> socketio.AsyncClient:
        client = socketio.AsyncClient(reconnection=False, http_session=self.session)

        @client.on("cases:updated")
        async def on_cases_updated(*_: object) -> None:
            self.stamps.append(time.perf_counter())
            if len(self.stamps) >= self.expected:
                self.all_in.set()

        return client

    async def connect(self, url: str, count: int, concurrency: int, token: str | None) -> int:
        auth = {"token": token} if token else None

        async def one() -> bool:
            client = self._new_client()
            try:
                await client.connect(url, transports=["websocket"], auth=auth, wait_timeout=15)
            except socketio.exceptions.ConnectionError as exc:
                print(f"  connect failed: {exc}", file=sys.stderr)
                return False
            self.clients.append(client)
            return True

        results = await harness.gather_bounded([one for _ in range(count)], concurrency)
        return sum(results)

    def arm(self) -> None:
        self.stamps = []
        self.expected = len(self.clients)
        self.all_in = asyncio.Event()

    async def close(self) -> None:
        async def one(client: socketio.AsyncClient) -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 10)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(harness.gather_bounded([lambda c=c: one(c) for c in self.clients], 200), 120)


async def broadcast_round(session: aiohttp.ClientSession, server: Server, admin: str, fleet: Fleet,
                          n: int, wait_s: float) -> Round:
    fleet.arm()
    t0 = time.perf_counter()
    await harness.create_case(session, server, admin, f"fanout_case_{n}", items=5)
    http_ms = (time.perf_counter() - t0) * 1000
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(fleet.all_in.wait(), wait_s)
    stamps = [(s - t0) * 1000 for s in fleet.stamps]
    if not stamps:
        return Round(http_ms, float("nan"), float("nan"), float("nan"), 0)
    return Round(http_ms, min(stamps), statistics.median(stamps), max(stamps), len(stamps))


async def measure(size: int, args: argparse.Namespace) -> SizeResult:
    server = await harness.start_server()
    try:
        connector = aiohttp.TCPConnector(limit=0)  # websockets hold their connection: no pool cap
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
            admin = await harness.admin_token(session, server)
            token = (await harness.register(session, server, "bench_socket_user")).token if args.token else None
            await asyncio.sleep(1.0)
            rss_before = harness.rss_kib(server.pid)
            fleet = Fleet(session)
            t0 = time.perf_counter()
            connected = await fleet.connect(server.base, size, args.connect_concurrency, token)
            connect_s = time.perf_counter() - t0
            await asyncio.sleep(2.0)  # let the server settle before reading its memory
            rss_connected = harness.rss_kib(server.pid)
            async with session.get(f"{server.base}/health") as r:
                health_clients = (await r.json())["clients"]
            result = SizeResult(size, connected, connect_s, rss_before, rss_connected, 0, health_clients)
            print(f"{size} clients: {connected} connected in {connect_s:.1f} s, server reports {health_clients}; "
                  f"RSS {rss_before / 1024:.0f} → {rss_connected / 1024:.0f} MiB", file=sys.stderr)
            for n in range(args.rounds):
                rnd = await broadcast_round(session, server, admin, fleet, n, args.round_timeout)
                print(f"  round {n + 1}: last client after {rnd.last_ms:.0f} ms "
                      f"({rnd.received}/{connected} received; HTTP {rnd.http_ms:.0f} ms)", file=sys.stderr)
                result.rounds.append(rnd)
                await asyncio.sleep(0.5)
            result.rss_after_kib = harness.rss_kib(server.pid)
            await fleet.close()
        return result
    finally:
        await harness.stop_server(server)


def report(results: list[SizeResult]) -> str:
    rows = []
    for r in results:
        def med(attr: str, res: SizeResult = r) -> str:
            return f"{statistics.median(getattr(x, attr) for x in res.rounds):,.0f}"

        lasts = [x.last_ms for x in r.rounds]
        missing = sum(r.connected - x.received for x in r.rounds)
        rows.append([
            f"{r.clients:,}", f"{r.connected:,} ({r.connect_s:.1f} s)", str(len(r.rounds)),
            med("http_ms"), med("first_ms"), med("median_ms"), med("last_ms"),
            f"{min(lasts):,.0f}–{max(lasts):,.0f}", str(missing),
            f"{r.rss_before_kib / 1024:.0f} → {r.rss_connected_kib / 1024:.0f} → {r.rss_after_kib / 1024:.0f}",
            f"{r.per_socket_kib:.0f}",
        ])
    return harness.markdown_table(
        ["clients", "connected (time)", "rounds", "create HTTP ms", "first client ms", "median client ms",
         "last client ms (median)", "last client range", "missed", "server RSS MiB before → connected → end",
         "KiB per socket"], rows)


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"machine: {await asyncio.to_thread(harness.machine_line)}", file=sys.stderr)
    results = [await measure(size, args) for size in args.clients]
    print(report(results))
    ok = all(r.connected == r.clients and all(x.received == r.connected for x in r.rounds) for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
