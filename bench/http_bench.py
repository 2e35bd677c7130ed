"""HTTP benchmark of the CyberHub backend on its embedded store.

Starts `python run.py` on a free 127.0.0.1 port with generated secrets, seeds an
admin catalogue and --users users (each topped up through a signed payment
webhook), then measures with a closed-loop aiohttp client — a fixed number of
requests at a fixed concurrency, each scenario also capped in time:

  GET /api/cases, GET /health, POST /api/cases/open (round-robin over the users),
  and the same opening with an Idempotency-Key header.

GET /api/cases is also measured with `wrk` when it is installed (fixed duration).
Prints a markdown table. Example:

    python bench/http_bench.py --requests 3000 --concurrency 50 --users 200
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import secrets
import shutil
import sys
import time
from dataclasses import dataclass

import aiohttp
import harness
from harness import LoadResult, Server, User


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    command: str
    socket_errors: str


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=3000, help="requests per GET scenario (default 3000)")
    p.add_argument("--open-requests", type=int, default=1000,
                   help="requests per case-opening scenario (default 1000; each one adds documents to the store)")
    p.add_argument("--concurrency", type=int, default=50, help="requests in flight (default 50)")
    p.add_argument("--users", type=int, default=200, help="users that open cases (default 200)")
    p.add_argument("--cases", type=int, default=16,
                   help="active cases in the catalogue (default 16: a ~33 KB body, as in the stock-stack measurement)")
    p.add_argument("--items", type=int, default=10, help="items per case (default 10)")
    p.add_argument("--warmup", type=int, default=200, help="unmeasured requests before each scenario")
    p.add_argument("--time-limit", type=float, default=120.0, help="seconds at most per scenario")
    p.add_argument("--wrk", choices=("auto", "yes", "no"), default="auto",
                   help="also measure GET /api/cases with wrk (auto: if installed)")
    p.add_argument("--wrk-duration", type=int, default=10, help="seconds of the wrk run")
    p.add_argument("--wrk-threads", type=int, default=2)
    args = p.parse_args(argv)
    for name in ("requests", "open_requests", "concurrency", "users", "cases", "items"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.time_limit <= 0 or not 1 <= args.wrk_duration <= 300:
        p.error("--time-limit must be > 0 and --wrk-duration 1..300")
    return args


async def seed(session: aiohttp.ClientSession, server: Server, args: argparse.Namespace) -> tuple[str, list[User]]:
    """Catalogue of --cases cases, --users users each funded for both opening scenarios."""
    admin = await harness.admin_token(session, server)
    case_ids = [await harness.create_case(session, server, admin, f"bench_case_{i}", args.items)
                for i in range(args.cases)]
    tag = secrets.token_hex(3)
    users = await harness.gather_bounded(
        [lambda i=i: harness.register(session, server, f"bench_{tag}_{i}") for i in range(args.users)], 8
    )
    # Two opening scenarios plus their warm-ups, spread round-robin, with 10 % to spare.
    opens_per_user = math.ceil(2 * (args.open_requests + args.warmup) / args.users)
    amount = math.ceil(opens_per_user * harness.CASE_PRICE * 1.1)
    await harness.gather_bounded([lambda u=u: harness.top_up(session, server, u.id, amount) for u in users], 8)
    return case_ids[0], users


async def scenarios(session: aiohttp.ClientSession, server: Server, case_id: str, users: list[User],
                    args: argparse.Namespace) -> list[LoadResult]:
    base = server.base
    open_body = {"caseId": case_id}
    counter = {"open": 0}

    async def get(path: str) -> int:
        async with session.get(base + path) as r:
            await r.read()
            return r.status

    async def open_case(i: int, idempotent: bool) -> int:
        # A single counter across warm-up and measured runs keeps users round-robin.
        user = users[counter["open"] % len(users)]
        counter["open"] += 1
        headers = {"Authorization": f"Bearer {user.token}"}
        if idempotent:
            headers["Idempotency-Key"] = f"bench-{counter['open']}-{i}"
        async with session.post(f"{base}/api/cases/open", json=open_body, headers=headers) as r:
            await r.read()
            return r.status

    plan = [
        ("GET /api/cases", lambda i: get("/api/cases"), args.requests),
        ("GET /health", lambda i: get("/health"), args.requests),
        ("POST /api/cases/open", lambda i: open_case(i, False), args.open_requests),
        ("POST /api/cases/open + Idempotency-Key", lambda i: open_case(i, True), args.open_requests),
    ]
    results = []
    for name, request, total in plan:
        if args.warmup:
            await harness.run_load(name, request, total=args.warmup, concurrency=args.concurrency,
                                   time_limit=args.time_limit)
        opened_before = counter["open"]
        result = await harness.run_load(name, request, total=total, concurrency=args.concurrency,
                                        time_limit=args.time_limit)
        store_note = f"; openings in the store: {opened_before:,} → {counter['open']:,}" if opened_before else ""
        print(f"  {name}: {result.ok}/{result.requests} ok in {result.elapsed:.1f} s{store_note}", file=sys.stderr)
        results.append(result)
    return results


def drift(result: LoadResult) -> str:
    """Throughput of the first quarter of completions vs the last quarter."""
    done = sorted(result.finish_times)
    q = len(done) // 4
    if q < 10:
        return "–"
    first = q / done[q - 1]
    last = q / (done[-1] - done[-q - 1])
    return f"{first:,.0f} → {last:,.0f}"


async def run_wrk(server: Server, args: argparse.Namespace) -> WrkResult | None:
    """GET /api/cases with wrk for --wrk-duration seconds (wrk stops by itself)."""
    wrk = shutil.which("wrk")
    if args.wrk == "no" or (args.wrk == "auto" and not wrk):
        return None
    if not wrk:
        raise SystemExit("--wrk yes but wrk is not installed (Debian package `wrk`)")
    cmd = [wrk, f"-t{args.wrk_threads}", f"-c{args.concurrency}", f"-d{args.wrk_duration}s", "--latency",
           f"{server.base}/api/cases"]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
    try:
        raw, _ = await asyncio.wait_for(proc.communicate(), args.wrk_duration + 30)
    except TimeoutError:
        proc.kill()
        raise
    out = raw.decode()

    def latency(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if not m:
            return math.nan
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errs = re.search(r"Socket errors:.*$", out, re.MULTILINE)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    problems = (errs.group(0) if errs else "") + (f" non-2xx: {non2xx.group(1)}" if non2xx else "")
    return WrkResult(float(rps.group(1)) if rps else math.nan, latency("50"), latency("90"), latency("99"),
                     " ".join(cmd).replace(server.base, "http://127.0.0.1:<port>"), problems.strip() or "none")


def report(results: list[LoadResult], wrk: WrkResult | None, body_bytes: int, args: argparse.Namespace) -> str:
    rows = []
    for r in results:
        errors = ", ".join(f"{k}: {v}" for k, v in r.errors.items()) or "0"
        if r.timed_out:
            errors += " (time limit hit)"
        rows.append([f"{r.name} (aiohttp)", f"{r.ok:,}", str(r.concurrency), f"{r.rps:,.0f}",
                     f"{r.pct_ms(50):.1f}", f"{r.pct_ms(95):.1f}", f"{r.pct_ms(99):.1f}", drift(r), errors])
    if wrk:
        rows.append([f"GET /api/cases (wrk -t{args.wrk_threads}, {args.wrk_duration} s)", "–",
                     str(args.concurrency), f"{wrk.rps:,.0f}", f"{wrk.p50_ms:.1f}", f"p90 {wrk.p90_ms:.1f}",
                     f"{wrk.p99_ms:.1f}", "–", wrk.socket_errors])
    table = harness.markdown_table(
        ["scenario", "ok requests", "conc.", "req/s", "p50 ms", "p95 ms", "p99 ms",
         "req/s first¼ → last¼", "errors"], rows)
    notes = [
        f"GET /api/cases body: {body_bytes:,} bytes ({args.cases} cases × {args.items} items); "
        f"{args.users} users opening round-robin; warm-up {args.warmup} requests per scenario "
        "(the openings' warm-ups count towards the store size).",
    ]
    if wrk:
        notes.append(f"wrk: `{wrk.command}`")
    return table + "\n\n" + "\n".join(notes)


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"machine: {await asyncio.to_thread(harness.machine_line)}", file=sys.stderr)
    server = await harness.start_server()
    try:
        timeout = aiohttp.ClientTimeout(total=30)
        connector = aiohttp.TCPConnector(limit=args.concurrency + 8)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            t0 = time.perf_counter()
            case_id, users = await seed(session, server, args)
            print(f"seeded {args.cases} cases, {len(users)} users in {time.perf_counter() - t0:.1f} s; "
                  f"server RSS {harness.rss_kib(server.pid) / 1024:.0f} MiB", file=sys.stderr)
            async with session.get(f"{server.base}/api/cases") as r:
                body_bytes = len(await r.read())
            results = await scenarios(session, server, case_id, users, args)
        wrk = await run_wrk(server, args)
        print(f"server RSS after the run: {harness.rss_kib(server.pid) / 1024:.0f} MiB", file=sys.stderr)
        print(report(results, wrk, body_bytes, args))
        return 0 if all(not r.errors and not r.timed_out for r in results) else 1
    finally:
        await harness.stop_server(server)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
