"""Where an idle websocket's memory goes: a tracemalloc breakdown per socket.

    cd bench && npm ci && cd ..
    python bench/socket_memory.py [--clients 2000] [--frames 30] [--top 25] [--client default|websocket]

Runs CyberHub in this process (the same `cyberhub.server.start` as `run.py`,
embedded store, a free port on 127.0.0.1) with tracemalloc on, connects
--clients anonymous clients with the official Node client (bench/sockets.mjs;
`--client default` = plain `io(url)`, polling then the upgrade, as the
frontend connects; `websocket` = `transports: ['websocket']`), and compares a snapshot taken before connecting with one
taken once they are all connected and idle. Prints the Python heap per socket
grouped by the library that allocated it (the innermost frame outside the
standard library decides, so an asyncio Future made by engine.io counts for
engine.io), then the top allocation sites. tracemalloc's own overhead is not
counted; VmRSS is printed too, but with tracemalloc on it is inflated.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import sysconfig
import tracemalloc
from collections import defaultdict
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

STDLIB = sysconfig.get_paths()["stdlib"]


def short(filename: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/")[1]
    if filename.startswith(STDLIB):
        return os.path.relpath(filename, STDLIB)
    return os.path.relpath(filename, ROOT)


def owner(tb: tracemalloc.Traceback) -> tuple[str, str]:
    """Who asked for this allocation: the innermost frame that is not the
    standard library (asyncio, json, …), as (package, file:line)."""
    for frame in reversed(tb):  # tracemalloc lists the oldest frame first
        name = frame.filename
        if name.startswith(STDLIB) and "site-packages" not in name:
            continue
        return short(name).split("/")[0], f"{short(name)}:{frame.lineno}"
    inner = tb[-1]
    return "stdlib", f"{short(inner.filename)}:{inner.lineno}"


async def main(args: argparse.Namespace) -> None:
    from harness import free_port

    from cyberhub.server.lifecycle import start
    from cyberhub.store import db as dbmod
    from settings import Settings

    settings = Settings(_env_file=None, jwt_secret="bench-memory-" + "x" * 40,
                        payment_webhook_secret="bench-memory-" + "y" * 40,
                        log_level="WARNING", rate_limit_enabled=False,
                        # every client comes from 127.0.0.1: no per-address or total session limit
                        socket_max_per_address=0, socket_max_connections=0)
    store = dbmod.connect(None, "cyberhub_memory_bench")
    server = await start(settings, store.db, port=free_port(), host="127.0.0.1")
    sio = server.services.sio
    base = f"http://127.0.0.1:{server.port}"

    gc.collect()
    before = tracemalloc.take_snapshot()
    plan = {"base": base, "clients": args.clients, "connectConcurrency": 200, "settleMs": 600_000,
            "serverPid": os.getpid(), "transports": None if args.client == "default" else ["websocket"]}
    node = await asyncio.create_subprocess_exec("node", str(BENCH / "sockets.mjs"), stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.DEVNULL)
    node.stdin.write(json.dumps(plan).encode())
    node.stdin.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while len(sio.eio.sockets) < args.clients or any(not s.connected for s in sio.eio.sockets.values()):
        if loop.time() > deadline:
            raise SystemExit(f"only {len(sio.eio.sockets)} connected")
        await asyncio.sleep(0.2)
    await asyncio.sleep(3)  # idle: every socket past its handshake, upgrade and first ping
    gc.collect()
    after = tracemalloc.take_snapshot()
    n = len(sio.eio.sockets)
    kinds: dict[str, int] = defaultdict(int)  # which socket classes carry the sessions
    for sock in sio.eio.sockets.values():
        kinds[type(sock).__name__] += 1
    node.kill()
    await node.wait()

    stats = after.compare_to(before, "traceback")
    by_owner: dict[str, int] = defaultdict(int)
    by_site: dict[str, int] = defaultdict(int)
    for stat in stats:
        package, where = owner(stat.traceback)
        by_owner[package] += stat.size_diff
        by_site[where] += stat.size_diff
    total = sum(by_owner.values())
    print(f"{n} idle sockets ({args.client} client; {dict(kinds)}): {total / n / 1024:.2f} KiB of Python heap "
          f"per socket (tracemalloc, {args.frames} frames)")
    print("\n| allocated for | KiB per socket |\n|---|---|")
    for name, size in sorted(by_owner.items(), key=lambda kv: -kv[1]):
        if abs(size) / n >= 16:
            print(f"| {name} | {size / n / 1024:.2f} |")
    print("\n| top allocation sites | bytes per socket |\n|---|---|")
    for name, size in sorted(by_site.items(), key=lambda kv: -kv[1])[:args.top]:
        print(f"| {name} | {size / n:.0f} |")
    if args.trace:
        for stat in stats:
            if any(f"{short(fr.filename)}:{fr.lineno}" == args.trace for fr in stat.traceback):
                print(f"\n{stat.size_diff / n:.0f} bytes per socket:")
                for fr in stat.traceback:
                    print(f"  {short(fr.filename)}:{fr.lineno}")
    await server.shutdown()
    store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--client", choices=["default", "websocket"], default="default",
                        help="how the clients connect: socket.io-client's default, or websocket only")
    parser.add_argument("--trace", help="print the whole tracebacks of one allocation site (file:line)")
    arguments = parser.parse_args()
    tracemalloc.start(arguments.frames)
    asyncio.run(main(arguments))
