"""Chat benchmark with the official Node client, against CyberHub and the Node
Express + socket.io reference server (bench/node-reference/) in the same run.

    cd bench && npm ci && cd ..
    python bench/chat_bench.py --runs 2000:10 5000:5 5000:20 --seconds 30
    python bench/chat_bench.py --runs 5000:0 5000:20 --openings 10 --chat-cap 15 --targets cyberhub node

For every VIEWERS:RATE of --runs and every --targets server (a fresh server each time):
VIEWERS anonymous websocket viewers connect (bench/chat.mjs, one Node process);
then --senders authenticated sockets (another Node process) send `chat:send`
in an open loop at RATE messages per second in total for --seconds. Reported:
messages acked / sent and refusals by code, ack latency p50/p99 from each
message's due time, delivery lag to the first --probes viewers p50/p99 (from
the due time), and deliveries missed (accepted messages × viewers − messages
received). RATE 0 = no chat.

--openings R adds the live feed's load beside the chat: case openings in an
open loop at R per second from a third process (bench/sockets.mjs, role
"openers"), with their answer latency p50/p99 — the "chat saturated" variant
(compare VIEWERS:0 with VIEWERS:20 at --chat-cap). --chat-cap is
CHAT_MAX_PER_SECOND for both servers (0 = no cap, the default here so that
the capacity itself is measured). Results: markdown on stdout, JSON in
bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

import aiohttp
import harness
import socket_bench

BENCH = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True, help="VIEWERS:RATE pairs (RATE = chat messages/s in total)")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--senders", type=int, default=50)
    p.add_argument("--probes", type=int, default=50, help="viewers whose delivery lag is measured")
    p.add_argument("--openings", type=float, default=0.0, help="case openings per second beside the chat")
    p.add_argument("--openers", type=int, default=50)
    p.add_argument("--chat-cap", type=int, default=0, help="CHAT_MAX_PER_SECOND (0 = no cap)")
    p.add_argument("--feed-cap", type=int, default=0, help="LIVE_FEED_MAX_PER_SECOND for CyberHub (0 = no cap)")
    p.add_argument("--targets", nargs="+", default=["cyberhub", "node"], choices=["cyberhub", "node"])
    p.add_argument("--connect-concurrency", type=int, default=200)
    p.add_argument("--client", choices=["default", "websocket"], default="default",
                   help="how viewers and senders connect: plain io(url) (polling, then the upgrade) or websocket only")
    p.add_argument("--grace-ms", type=int, default=5000, help="wait for late deliveries after the last ack")
    p.add_argument("--label", default="")
    return p.parse_args(argv)


def _write_plan(plan: dict) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(plan, f)
    return f.name


def _remove(path: str) -> None:
    Path(path).unlink(missing_ok=True)


def client_option(args: argparse.Namespace) -> dict:
    return {"transports": None if args.client == "default" else ["websocket"]}


async def node_process(plan: dict, plans: list[str]) -> asyncio.subprocess.Process:
    """bench/chat.mjs with `plan`; the plan file's path is added to `plans` (removed by the caller)."""
    path = _write_plan(plan)
    plans.append(path)
    return await asyncio.create_subprocess_exec("node", str(BENCH / "chat.mjs"), path, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=None, limit=2**26)


async def last_line(proc: asyncio.subprocess.Process, limit: float = 900) -> dict:
    out = await asyncio.wait_for(proc.stdout.readline(), limit)
    if not out:
        raise RuntimeError(f"chat.mjs ended without a result (exit {await proc.wait()})")
    return json.loads(out)


async def drive(base: str, viewers: int, rate: float, tokens: list[str], args: argparse.Namespace,
                openings: dict | None) -> dict:
    """Viewers, then senders and (optionally) openers at the same time; the viewers' figures."""
    plans: list[str] = []
    watcher = await node_process({"base": base, "role": "viewers", "clients": viewers, "probes": args.probes,
                                  "connectConcurrency": args.connect_concurrency, "graceMs": args.grace_ms,
                                  **client_option(args)}, plans)
    procs = [watcher]
    try:
        if await last_line(watcher) != {"ready": True}:
            raise RuntimeError("viewers: unexpected first line")
        await asyncio.sleep(1.0)
        jobs = []
        if rate > 0:
            sender = await node_process({"base": base, "role": "senders", "tokens": tokens, "rate": rate,
                                         "seconds": args.seconds, "connectConcurrency": 50,
                                         **client_option(args)}, plans)
            procs.append(sender)
            jobs.append(last_line(sender))
        if openings:
            jobs.append(socket_bench.run_generator({"base": base, "role": "openers", "mixed": openings}))
        results = await asyncio.gather(*jobs)
        chat = results[0] if rate > 0 else {"accepted": [], "stats": {"sent": 0, "acked": 0, "refused": {}}}
        watcher.stdin.write(json.dumps(chat).encode() + b"\n")
        await watcher.stdin.drain()
        out = await last_line(watcher)
        if openings:
            out["openings"] = results[-1]["stats"]
        return out
    finally:
        for path in plans:
            _remove(path)
        for proc in procs:
            if proc.returncode is None:
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()


async def run_node(viewers: int, rate: float, args: argparse.Namespace) -> dict:
    ref = await socket_bench.start_node({"CHAT_MAX_PER_SECOND": str(args.chat_cap)})
    try:
        tokens = [f"s{i}" for i in range(args.senders)]
        openings = None
        if args.openings:
            openers = [{"token": f"u{i}", "username": f"u{i}"} for i in range(args.openers)]
            openings = {"rate": args.openings, "seconds": args.seconds, "caseId": "", "openers": openers}
        return await drive(ref.base, viewers, rate, tokens, args, openings)
    finally:
        await socket_bench.stop_node(ref)


async def run_cyberhub(viewers: int, rate: float, args: argparse.Namespace) -> dict:
    server = await harness.start_server({"CHAT_MAX_PER_SECOND": str(args.chat_cap),
                                         "LIVE_FEED_MAX_PER_SECOND": str(args.feed_cap)})
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
            senders = await harness.gather_bounded(
                [lambda i=i: harness.register(session, server, f"sender_{i}") for i in range(args.senders)], 10)
            openings = None
            if args.openings:
                admin = await harness.admin_token(session, server)
                case_id = await harness.create_case(session, server, admin, "bench case", items=5)
                users = await harness.gather_bounded(
                    [lambda i=i: harness.register(session, server, f"opener_{i}") for i in range(args.openers)], 10)
                per_user = int(args.openings * args.seconds / max(1, args.openers) + 5) * harness.CASE_PRICE
                await harness.gather_bounded([lambda u=u: harness.top_up(session, server, u.id, per_user)
                                              for u in users], 10)
                openings = {"rate": args.openings, "seconds": args.seconds, "caseId": case_id,
                            "openers": [{"token": u.token, "username": f"opener_{i}"} for i, u in enumerate(users)]}
            result = await drive(server.base, viewers, rate, [s.token for s in senders], args, openings)
            async with session.get(f"{server.base}/metrics") as r:
                result["server"] = socket_bench.stalls(socket_bench.metric_values(await r.text()))
            return result
    finally:
        await harness.stop_server(server)


def fmt(v: float | None, digits: int = 0) -> str:
    return "–" if v is None else f"{v:,.{digits}f}"


def print_table(runs: list[dict]) -> None:
    rows = []
    for r in runs:
        o = r.get("openings") or {}
        refused = ", ".join(f"{k} {v}" for k, v in sorted(r["refused"].items())) or "–"
        lag = r.get("server", {}).get("lagOver40ms")
        rows.append([r["target"], fmt(r["viewers"]), fmt(r["rate"], 0), str(r["chatCap"] or "–"),
                     f"{r['acked']}/{r['sent']}", refused, fmt(r.get("ackP50"), 1), fmt(r.get("ackP99"), 1),
                     fmt(r.get("lagP50"), 1), fmt(r.get("lagP99"), 1), fmt(r.get("deliveriesMissed")),
                     fmt(o.get("latencyP50"), 1), fmt(o.get("latencyP99"), 1), fmt(lag)])
    print(harness.markdown_table(
        ["server", "viewers", "chat/s", "cap", "acked", "refused", "ack p50 ms", "ack p99 ms", "lag p50 ms",
         "lag p99 ms", "deliveries missed", "opening p50 ms", "opening p99 ms", "loop lag >40 ms"], rows))


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(harness.machine_line(), file=sys.stderr)
    runs = []
    for spec in args.runs:
        viewers, rate = (float(x) for x in spec.split(":"))
        for target in args.targets:
            print(f"chat: {target}, {viewers:.0f} viewers, {rate:g}/s"
                  + (f", openings {args.openings:g}/s" if args.openings else ""), file=sys.stderr)
            run = run_node if target == "node" else run_cyberhub
            r = await run(int(viewers), rate, args)
            r.update(target=target, rate=rate, chatCap=args.chat_cap)
            runs.append(r)
    out = harness.save_results("chat", args.label, {"runs": runs})
    print_table(runs)
    print(f"\nJSON: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
