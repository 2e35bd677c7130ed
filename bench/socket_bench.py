"""Socket.IO benchmarks with the official Node client, against CyberHub and the
Node Express + socket.io reference server (bench/node-reference/) in the same run.

    cd bench && npm ci && cd ..
    python bench/socket_bench.py --fanout 1000 5000 --rounds 5
    python bench/socket_bench.py --mixed 1000:20 5000:10 --seconds 20 --cap 0

For every size and every --targets server (a fresh server each time):
- fan-out (`--fanout N ...`): N websocket clients connect (time to connect all,
  server VmRSS before/after → KiB per socket), then --rounds times an admin
  creates a case and the server emits `cases:updated` to everyone: time from
  the POST to the last client (median over rounds);
- mixed (`--mixed VIEWERS:RATE ...`): VIEWERS websocket clients (the first
  --openers authenticated as the opening users) while openings are sent in an
  open loop at RATE per second for --seconds: answered/s, latency p50/p99 from
  the due time, `drop:new` lag p50/p99 at the viewers, deliveries missed.
After each CyberHub run, its /metrics: event-loop lag samples over 50 ms and
the longest GC pause bucket. The load generator is bench/sockets.mjs (one Node
process). Results: markdown on stdout, JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

import aiohttp
import harness

BENCH = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fanout", type=int, nargs="*", default=[], help="client counts for the fan-out run")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--mixed", nargs="*", default=[], help="VIEWERS:RATE pairs for the mixed run")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each mixed run")
    p.add_argument("--openers", type=int, default=50, help="users taking turns to open cases")
    p.add_argument("--cap", type=int, default=0, help="LIVE_FEED_MAX_PER_SECOND for CyberHub (0 = no cap)")
    p.add_argument("--targets", nargs="+", default=["cyberhub", "node"], choices=["cyberhub", "node"])
    p.add_argument("--connect-concurrency", type=int, default=200)
    p.add_argument("--client", choices=["default", "default-keepalive", "websocket"], default="default",
                   help="how clients connect: socket.io-client's default, plain io(url) — polling, then the "
                        "upgrade, as the frontend does; in Node each polling request on a new connection —, "
                        "the same with kept-alive connections as a browser makes them (default-keepalive), "
                        "or transports: ['websocket']")
    p.add_argument("--storm", type=int, nargs="*", default=[],
                   help="client counts for the reconnect storm: every connection dropped at once, "
                        "each client back with the client's default back-off")
    p.add_argument("--label", default="", help="a name for the JSON file")
    p.add_argument("--profile", default=None,
                   help="py-spy raw output prefix: profiles CyberHub (py-spy record -f raw) during each run")
    p.add_argument("--report", nargs="+", help="only print the tables of these JSON result files")
    args = p.parse_args(argv)
    if not args.fanout and not args.mixed and not args.storm and not args.report:
        p.error("give --fanout, --mixed and/or --storm")
    return args


class NodeReference(harness.LocalServer):
    """bench/node-reference/server.mjs."""


async def start_node(env: dict[str, str] | None = None) -> NodeReference:
    port = harness.free_port()
    proc = await asyncio.create_subprocess_exec("node", str(BENCH / "node-reference" / "server.mjs"), str(port),
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                                                env={**os.environ, **(env or {})})
    ref = NodeReference(proc, port)
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{ref.base}/health") as r:
                    if r.status == 200:
                        return ref
            await asyncio.sleep(0.1)
    proc.kill()
    raise RuntimeError("node reference server did not start")


async def stop_node(ref: NodeReference) -> None:
    if ref.proc.returncode is None:
        ref.proc.terminate()
        try:
            await asyncio.wait_for(ref.proc.wait(), 10)
        except TimeoutError:
            ref.proc.kill()


def load_runs(path: str) -> list[dict]:
    return json.loads(Path(path).read_text())["runs"]


def _remove(path: str) -> None:
    Path(path).unlink(missing_ok=True)


async def run_mixed(plan: dict) -> dict:
    """Viewers in one Node process, the open loop of openings in another (so the
    viewers' work never delays an opening past its due time)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({**plan, "separateOpeners": True}, f)
    viewers = await asyncio.create_subprocess_exec("node", str(BENCH / "sockets.mjs"), f.name,
                                                   stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                   stderr=None, limit=2**24)
    try:
        line = await asyncio.wait_for(viewers.stdout.readline(), 600)
        if json.loads(line) != {"ready": True}:
            raise RuntimeError(f"viewers: unexpected {line[:200]!r}")
        openers = await run_generator({**plan, "role": "openers"}, raw=True)
        viewers.stdin.write(openers.strip() + b"\n")
        await viewers.stdin.drain()
        out = await asyncio.wait_for(viewers.stdout.readline(), 600)
        await asyncio.wait_for(viewers.wait(), 60)
        return json.loads(out)
    finally:
        _remove(f.name)
        if viewers.returncode is None:
            viewers.kill()


async def run_generator(plan: dict, raw: bool = False) -> dict:
    proc = await asyncio.create_subprocess_exec("node", str(BENCH / "sockets.mjs"), stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=None, limit=2**24)
    out, _ = await asyncio.wait_for(proc.communicate(json.dumps(plan).encode()), 900)
    if proc.returncode != 0:
        raise RuntimeError(f"sockets.mjs exited with {proc.returncode}")
    last = out.decode().strip().splitlines()[-1]
    return last.encode() if raw else json.loads(last)


def metric_values(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                values[name] = float(value)
    return values


BUCKETS = ("0.001", "0.0025", "0.005", "0.01", "0.02", "0.04", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "+Inf")


def worst_bucket(values: dict[str, float], name: str, labels: str = "") -> float:
    """The upper bound of the highest histogram bucket that received a sample (0 if none)."""
    worst, prev = 0.0, 0.0
    for le in BUCKETS:
        count = values.get(f'{name}_bucket{{{labels}le="{le}"}}', prev)
        if count > prev:
            worst = float(le)
        prev = count
    return worst


def stalls(values: dict[str, float]) -> dict:
    """Lag samples and GC pauses above 50 ms, and the largest buckets reached, from /metrics
    (cumulative since the server started)."""
    lag_total = values.get("cyberhub_event_loop_lag_seconds_count", 0)
    lag_le_50 = values.get('cyberhub_event_loop_lag_seconds_bucket{le="0.05"}', 0)
    # A 10 ms probe: a stall of S ms is a lag of at least S − 10 ms, so "no lag over
    # 40 ms" means "no stall over 50 ms" (servers before that probe had no 0.04 bucket).
    lag_le_40 = values.get('cyberhub_event_loop_lag_seconds_bucket{le="0.04"}')
    lag_le_250 = values.get('cyberhub_event_loop_lag_seconds_bucket{le="0.25"}', 0)
    gc_by_gen = {gen: values.get(f'cyberhub_gc_pause_seconds_count{{generation="{gen}"}}', 0) for gen in "012"}
    gc_over_by_gen = {
        gen: gc_by_gen[gen] - values.get(f'cyberhub_gc_pause_seconds_bucket{{generation="{gen}",le="0.05"}}', 0)
        for gen in "012"}
    gc_over = sum(gc_over_by_gen.values())
    gc_count = sum(gc_by_gen.values())
    gc_seconds = {gen: values.get(f'cyberhub_gc_pause_seconds_sum{{generation="{gen}"}}', 0) for gen in "012"}
    worst = max(worst_bucket(values, "cyberhub_gc_pause_seconds", f'generation="{gen}",') for gen in "012")
    lag_worst = worst_bucket(values, "cyberhub_event_loop_lag_seconds")
    return {"gcByGeneration": gc_by_gen, "lagSamples": lag_total, "lagOver50ms": lag_total - lag_le_50,
            "lagOver40ms": None if lag_le_40 is None else lag_total - lag_le_40,
            "lagOver250ms": lag_total - lag_le_250, "lagWorstBucketS": lag_worst,
            "gcPauses": gc_count,
            "gcSecondsByGeneration": gc_seconds, "gcSeconds": sum(gc_seconds.values()),
            "gcOver50ms": gc_over, "gcOver50msByGeneration": gc_over_by_gen, "gcWorstBucketS": worst,
            "fastDeliveries": values.get('cyberhub_socket_deliveries_total{path="fast"}', 0),
            "queuedDeliveries": values.get('cyberhub_socket_deliveries_total{path="queued"}', 0)}


def storm_lag(result: dict, *, gc: bool) -> dict:
    """The loop while every client came back: lag samples over 250 / 40 ms, the worst
    bucket reached, and (CyberHub) the seconds spent in garbage collection."""
    before = stalls(metric_values(result.pop("metricsBeforeStorm", "")))
    after = stalls(metric_values(result.get("metricsEnd", "")))
    return {"lagOver250ms": after["lagOver250ms"] - before["lagOver250ms"],
            "lagOver40ms": (after["lagOver40ms"] or 0) - (before["lagOver40ms"] or 0),
            "lagWorstBucketS": after["lagWorstBucketS"],
            "gcSeconds": after["gcSeconds"] - before["gcSeconds"] if gc else None}


def client_plan(args: argparse.Namespace, storm: bool) -> dict:
    """How the generator's clients connect, and the storm if asked for."""
    plan: dict = {"transports": ["websocket"] if args.client == "websocket" else None,
                  "keepAlive": args.client == "default-keepalive"}
    if storm:
        plan["storm"] = {"timeoutMs": 120_000}
    return plan


async def run_one(target: str, clients: int, args: argparse.Namespace, *, mixed: tuple[int, float] | None,
                  storm: bool = False) -> dict:
    openers_n = args.openers if mixed else 0
    if target == "node":
        ref = await start_node()
        try:
            openers = [{"token": f"u{i}", "username": f"u{i}"} for i in range(openers_n)]
            plan = {"base": ref.base, "clients": clients, "serverPid": ref.pid, "metricsPath": "/metrics",
                    "connectConcurrency": args.connect_concurrency,
                    "viewerTokens": [o["token"] for o in openers], **client_plan(args, storm)}
            if mixed:
                plan["mixed"] = {"rate": mixed[1], "seconds": args.seconds, "caseId": "", "openers": openers}
            elif not storm:
                plan["fanout"] = {"rounds": args.rounds, "path": "/api/admin/cases", "token": "admin",
                                  "body": harness.case_body("fanout", 5)}
            await asyncio.sleep(1.0)
            result = await (run_mixed(plan) if mixed else run_generator(plan))
            if storm:  # its loop lag, measured and exported as CyberHub's (node-reference/server.mjs)
                result["stormLag"] = storm_lag(result, gc=False)
            for key in ("metricsConnected", "metricsEnd", "metricsBeforeStorm"):
                result.pop(key, None)
            return result
        finally:
            await stop_node(ref)
    extra = {"LIVE_FEED_MAX_PER_SECOND": str(args.cap)}
    server = await harness.start_server(extra)
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
            admin = await harness.admin_token(session, server)
            case_id = await harness.create_case(session, server, admin, "bench case", items=5)
            users = await harness.gather_bounded(
                [lambda i=i: harness.register(session, server, f"opener_{i}") for i in range(openers_n)], 10)
            if mixed:
                per_user = int(mixed[1] * args.seconds / max(1, openers_n) + 5) * harness.CASE_PRICE
                await harness.gather_bounded([lambda u=u: harness.top_up(session, server, u.id, per_user)
                                              for u in users], 10)
            usernames = [f"opener_{i}" for i in range(openers_n)]
            openers = [{"token": u.token, "username": n} for u, n in zip(users, usernames, strict=True)]
            plan = {"base": server.base, "clients": clients, "serverPid": server.pid, "metricsPath": "/metrics",
                    "connectConcurrency": args.connect_concurrency, "viewerTokens": [o["token"] for o in openers],
                    **client_plan(args, storm)}
            if mixed:
                plan["mixed"] = {"rate": mixed[1], "seconds": args.seconds, "caseId": case_id, "openers": openers}
            elif not storm:
                plan["fanout"] = {"rounds": args.rounds, "path": "/api/admin/cases", "token": admin,
                                  "body": harness.case_body("fanout", 5)}
            await asyncio.sleep(1.0)
            spy = None
            if args.profile:  # the whole generator run: connecting, then the fan-out, mix or storm
                run_name = f"{clients}-{mixed[1]:g}" if mixed else f"{'storm' if storm else 'fanout'}-{clients}"
                spy = await asyncio.create_subprocess_exec(
                    "py-spy", "record", "-p", str(server.pid), "-f", "raw", "-r", "200",
                    "-o", f"{args.profile}.{run_name}.txt",
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            result = await (run_mixed(plan) if mixed else run_generator(plan))
            if storm:
                result["stormLag"] = storm_lag(result, gc=True)
            connected = stalls(metric_values(result.pop("metricsConnected", "")))
            end = stalls(metric_values(result.pop("metricsEnd", "")))
            # While all clients were connected (from after connecting to the end of the run):
            result["server"] = end
            result["steady"] = {k: end[k] - connected[k] if end.get(k) is not None else None
                                for k in ("lagSamples", "lagOver50ms", "lagOver40ms", "gcPauses", "gcOver50ms")}
            result["steady"]["gcWorstBucketS"] = end["gcWorstBucketS"] if end["gcOver50ms"] > connected["gcOver50ms"] \
                else None
            if spy is not None:
                with contextlib.suppress(ProcessLookupError):
                    spy.send_signal(2)
                await spy.wait()
            async with session.get(f"{server.base}/metrics") as r:
                result["server"] = stalls(metric_values(await r.text()))
            return result
    finally:
        await harness.stop_server(server)


def answered_per_second(r: dict) -> float:
    """Answers over the time from the first due request to the last answer (at least the sending time)."""
    m = r["mixed"]
    return m["answered"] / max(m["wallSeconds"], m["sent"] / r["rate"])


def stall_cell(r: dict) -> str:
    """Event-loop lag samples over 40 ms (10 ms probe: = stalls over 50 ms are ruled out
    when 0; a server with the older 100 ms probe: over 50 ms, marked *) / GC pauses over
    50 ms, while connecting; while connected."""
    s, st = r.get("server"), r.get("steady")
    if not s or not st or not s["lagSamples"]:
        return "–"  # not measured (a server without these metrics)
    key, mark = ("lagOver40ms", "") if s.get("lagOver40ms") is not None else ("lagOver50ms", "*")
    return (f"{s[key] - st[key]:.0f}{mark} / {s['gcOver50ms'] - st['gcOver50ms']:.0f}; "
            f"{st[key]:.0f}{mark} / {st['gcOver50ms']:.0f}")


def fmt(v: float | None, digits: int = 0) -> str:
    return "–" if v is None else f"{v:,.{digits}f}"


def print_tables(runs: list[dict]) -> None:
    rows = []
    for r in (x for x in runs if x["kind"] == "fanout"):
        lasts = sorted(x["lastMs"] for x in r["fanout"] if x["lastMs"] is not None)
        rows.append([f"{r['target']} ({r.get('client', 'websocket')})", fmt(r["clients"]),
                     f"{r['connected']:,} ({r['connectSeconds']:.2f} s)",
                     fmt(lasts[len(lasts) // 2] if lasts else None),
                     f"{fmt(lasts[0] if lasts else None)}–{fmt(lasts[-1] if lasts else None)}",
                     fmt(min(x["received"] for x in r["fanout"])),
                     f"{r['rssBeforeKiB'] // 1024} → {r['rssConnectedKiB'] // 1024}", fmt(r.get("kibPerSocket"), 1),
                     stall_cell(r)])
    if rows:
        print(harness.markdown_table(
            ["server", "clients", "connected (time)", "last client ms (median)", "last client range",
             "min received", "RSS MiB before → connected", "KiB/socket",
             "loop lag >40 ms / GC >50 ms: connecting; connected"], rows))
        print()
    rows = []
    for r in (x for x in runs if x["kind"] == "storm"):
        st, lag = r["storm"], r.get("stormLag")
        rows.append([r["target"], r.get("client", "websocket"), fmt(r["clients"]),
                     f"{r['connected']:,} ({r['connectSeconds']:.2f} s)", f"{st['back']}/{r['connected']}",
                     fmt(st["p50Ms"]), fmt(st["p99Ms"]), fmt(st["allBackMs"]),
                     f"{fmt(st.get('attempts'))} / {fmt(st.get('errors'))}",
                     "–" if not lag else f"{lag['lagOver250ms']:.0f} / {lag['lagOver40ms']:.0f}",
                     "–" if not lag or lag.get("gcSeconds") is None else f"{lag['gcSeconds']:.2f}"])
    if rows:
        print(harness.markdown_table(
            ["server", "client", "clients", "connected (time)", "back", "back p50 ms", "back p99 ms",
             "all back ms", "reconnect attempts / errors", "loop lag samples >250 ms / >40 ms during the storm",
             "GC s during the storm"],
            rows))
        print()
    rows = []
    for r in (x for x in runs if x["kind"] == "mixed"):
        m = r["mixed"]
        rows.append([f"{r['target']} ({r.get('client', 'websocket')})", fmt(r["clients"]), fmt(r["rate"]),
                     "–" if r["cap"] is None else str(r["cap"]),
                     f"{m['answered']}/{m['sent']}", fmt(answered_per_second(r), 1), fmt(m["latencyP50"], 1),
                     fmt(m["latencyP99"], 1), fmt(m["feedLagP50"], 1), fmt(m["feedLagP99"], 1),
                     fmt(m["deliveriesMissed"]), stall_cell(r)])
    if rows:
        print(harness.markdown_table(
            ["server", "viewers", "openings/s", "cap", "answered", "answered/s", "p50 ms", "p99 ms",
             "feed lag p50 ms", "feed lag p99 ms", "deliveries missed",
             "loop lag >40 ms / GC >50 ms: connecting; connected"], rows))


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        for path in args.report:
            print_tables(load_runs(path))
        return 0
    print(harness.machine_line(), file=sys.stderr)
    runs: list[dict] = []
    for n in args.fanout:
        for target in args.targets:
            print(f"fan-out: {target}, {n} clients", file=sys.stderr)
            r = await run_one(target, n, args, mixed=None)
            r.update(kind="fanout", target=target, client=args.client)
            runs.append(r)
    for spec in args.mixed:
        viewers, rate = spec.split(":")
        for target in args.targets:
            print(f"mixed: {target}, {viewers} viewers, {rate}/s", file=sys.stderr)
            r = await run_one(target, int(viewers), args, mixed=(int(viewers), float(rate)))
            r.update(kind="mixed", target=target, rate=float(rate), cap=args.cap if target == "cyberhub" else None,
                     client=args.client)
            runs.append(r)
    for n in args.storm:
        for target in args.targets:
            print(f"reconnect storm: {target}, {n} clients", file=sys.stderr)
            r = await run_one(target, n, args, mixed=None, storm=True)
            r.update(kind="storm", target=target, client=args.client)
            runs.append(r)
    out = harness.save_results("sockets", args.label, {"runs": runs})
    print_tables(runs)
    print(f"\nJSON: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
