"""Openings against the Node reference, the catalogue against bare Tornado (issue 18, item 4).

Everything runs on this machine, one server at a time, in one run; **the load
generators (bench/load.mjs in Node, wrk) share the machine with the server
measured**, so each figure includes their cost — compare the ratios, not the
absolute numbers, with other machines.

Starts, all on 127.0.0.1:
  * CyberHub (`python run.py`, embedded store): --cases cases of --items items
    (the GET /api/cases body), --users players topped up by signed webhooks;
  * the Node reference (bench/node-reference/server.mjs: Express + socket.io 4,
    in memory, no JWT, no store) with one case of --items items;
  * bare Tornado (bench/bare_tornado.py) serving CyberHub's catalogue bytes, and
    one of CyberHub's opening answers to every POST /api/cases/open (Tornado's
    own cost per opening: a ceiling for any handler on it, beside Node's).

Then, --rounds times (the order of the two servers alternates per round):
  1. POST /api/cases/open, load.mjs closed loop of --inflight in flight,
     --requests requests (after --warmup), users round-robin: CyberHub, Node,
     bare Tornado's fixed answer;
  2. GET /api/cases, `wrk -t2 -c<inflight> -d<wrk-duration>s`: CyberHub, bare Tornado;
  3. GET /api/cases, load.mjs closed loop: CyberHub, bare Tornado.
And once at the end, POST /api/cases/open in an open loop at --rate (default:
half the smaller closed-loop capacity), latency from each request's due time:
CyberHub, Node. --prior N makes every player open N cases first (unmeasured),
as a long-lived player has (up to 500 operation markers on the user).

Prints a markdown table (medians over the rounds, every round's req/s beside,
and the CPU time each server used per answered request, from /proc: less
sensitive than req/s to whatever else shares the machine) and the ratios
against the targets (openings ≥ 1.0× Node, catalogue ≥ 1.0× bare Tornado).
--profile PREFIX afterwards records py-spy profiles of CyberHub (PREFIX.open.txt
under the closed loop of openings, PREFIX.cases.txt under wrk) and of bare
Tornado under wrk (PREFIX.bare.txt); bench/profile_summary.py summarises them.

    flock /tmp/cyberhub-bench.lock python bench/rest_bench.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import secrets
import shutil
import statistics
import sys
from collections.abc import Awaitable
from pathlib import Path

import aiohttp
import harness
from socket_bench import start_node, stop_node

SHARED = "load generator (load.mjs / wrk) on the same 2-core machine as the server"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=3000, help="measured requests per load.mjs run (default 3000)")
    p.add_argument("--warmup", type=int, default=300, help="unmeasured requests before each load.mjs run")
    p.add_argument("--inflight", type=int, default=50, help="closed loop: requests in flight; wrk -c (default 50)")
    p.add_argument("--rate", type=float, default=None,
                   help="open-loop openings/s (default: half the smaller closed-loop capacity)")
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--prior", type=int, default=0,
                   help="openings per player made before measuring (unmeasured): long-lived players carry up to "
                        "500 operation markers each (docs/MONEY.md)")
    p.add_argument("--cases", type=int, default=16, help="CyberHub's catalogue: cases (default 16, ~33 KB body)")
    p.add_argument("--items", type=int, default=10, help="items per case (default 10)")
    p.add_argument("--rounds", type=int, default=2, help="measurement rounds (default 2)")
    p.add_argument("--wrk-duration", type=int, default=8, help="seconds per wrk run (default 8)")
    p.add_argument("--time-limit", type=float, default=120.0, help="seconds at most per load.mjs run")
    p.add_argument("--only", choices=("openings", "catalogue"), help="measure only one of the two")
    p.add_argument("--bare-uvloop", action="store_true",
                   help="bare Tornado on uvloop (CyberHub's default loop) instead of the stock asyncio loop")
    p.add_argument("--profile", help="afterwards, py-spy profiles: PREFIX.open.txt, PREFIX.cases.txt, PREFIX.bare.txt")
    p.add_argument("--profile-seconds", type=int, default=10)
    p.add_argument("--json", type=Path, help="write every figure here")
    args = p.parse_args(argv)
    if min(args.requests, args.inflight, args.users, args.cases, args.items, args.rounds) < 1 or args.warmup < 0:
        p.error("--requests, --inflight, --users, --cases, --items and --rounds must be at least 1")
    if shutil.which("wrk") is None and args.only != "openings":
        p.error("wrk is not installed (apt-get install -y wrk)")
    return args


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.figures: dict[tuple[str, str], list[dict]] = {}  # (scenario, server) → one figure per round

    async def add(self, scenario: str, server: str, pid: int, measure: Awaitable[dict]) -> None:
        """Run `measure` and record its figure, with the CPU time the server used per answered
        request (less sensitive than req/s to whatever else shares the machine)."""
        before = harness.cpu_seconds(pid)
        figure = await measure
        figure["cpu_us"] = 1e6 * (harness.cpu_seconds(pid) - before) / max(1, figure["ok"])
        self.figures.setdefault((scenario, server), []).append(figure)
        harness.log(f"  {scenario} on {server}: {figure['rps']:,.0f}/s (p50 {figure['p50']:.2f}, "
                    f"p99 {figure['p99']:.2f} ms), {figure['cpu_us']:.0f} µs CPU per request")

    async def load(self, base: str, requests: list[dict], *, total: int, **mode: object) -> dict:
        result = await harness.node_load({"base": base, "requests": requests, "total": total,
                                          "timeLimit": self.args.time_limit, **mode})
        if result["errors"]:
            raise RuntimeError(f"errors in a load run against {base}: {result['statuses']}")
        return result

    async def warm(self, base: str, requests: list[dict]) -> None:
        if self.args.warmup:
            await self.load(base, requests, total=self.args.warmup, inflight=self.args.inflight)

    def closed(self, base: str, requests: list[dict]) -> Awaitable[dict]:
        return self.load(base, requests, total=self.args.requests, inflight=self.args.inflight)

    def median(self, scenario: str, server: str, figure: str = "rps") -> float:
        return statistics.median(f[figure] for f in self.figures[(scenario, server)])


async def seed_cyberhub(session: aiohttp.ClientSession, server: harness.Server,
                        args: argparse.Namespace) -> tuple[str, list[harness.User]]:
    admin = await harness.admin_token(session, server)
    case_ids = [await harness.create_case(session, server, admin, f"rest_case_{i}", args.items)
                for i in range(args.cases)]
    tag = secrets.token_hex(3)
    users = await harness.gather_bounded(
        [lambda i=i: harness.register(session, server, f"rest_{tag}_{i}") for i in range(args.users)], 8)
    openings = args.rounds * (args.requests + args.warmup) + args.requests + args.warmup + args.prior * args.users
    if args.profile:
        openings += 2000 * args.profile_seconds  # more than the profiled closed loop can open
    amount = math.ceil(openings / args.users * 1.2 + 5) * harness.CASE_PRICE
    await harness.gather_bounded([lambda u=u: harness.top_up(session, server, u.id, amount) for u in users], 8)
    return case_ids[0], users


async def profile(pid: int, path: str, seconds: int, load: asyncio.Future) -> None:
    """py-spy of `pid` for `seconds` while `load` runs (started just before)."""
    spy = await asyncio.create_subprocess_exec("py-spy", "record", "-p", str(pid), "-f", "raw", "-r", "200",
                                               "-o", path, "-d", str(seconds),
                                               stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    await spy.wait()
    await load
    harness.log(f"profile written to {path}")


async def main(args: argparse.Namespace) -> int:
    machine = harness.machine_line()
    harness.log(machine)
    harness.log(f"note: {SHARED}")
    run = Run(args)
    do_open, do_cases = args.only in (None, "openings"), args.only in (None, "catalogue")
    server = await harness.start_server()
    node = bare = None
    try:
        async with aiohttp.ClientSession() as session:
            case_id, users = await seed_cyberhub(session, server, args)
            async with session.get(f"{server.base}/api/cases") as r:
                catalogue = await r.read()
            async with session.post(f"{server.base}/api/cases/open", json={"caseId": case_id},
                                    headers=bearer(users[0].token)) as r:
                answer = await r.read()  # what bare Tornado answers to every opening
            if do_open:
                node = await start_node()
                async with session.post(f"{node.base}/api/admin/cases",
                                        json=harness.case_body("rest_case_0", args.items)) as r:
                    node_case = (await r.json())["case"]["id"]
            bare = await harness.start_bare_tornado(catalogue, answer, uvloop=args.bare_uvloop)
        if args.prior:
            harness.log(f"{args.prior} openings per player first")
            prior = [{"method": "POST", "path": "/api/cases/open", "headers": bearer(u.token),
                      "body": {"caseId": case_id}} for u in users]
            await run.load(server.base, prior, total=args.prior * args.users, inflight=args.inflight, timeLimit=3600)
        harness.log(f"seeded: {args.cases} cases × {args.items} items ({len(catalogue):,} bytes), {args.users} users")
        def openings(case: str) -> list[dict]:
            return [{"method": "POST", "path": "/api/cases/open", "headers": bearer(u.token),
                     "body": {"caseId": case}} for u in users]

        opens = {"cyberhub": (server.pid, server.base, openings(case_id))}
        if node is not None:
            opens["node"] = (node.pid, node.base, openings(node_case))
            opens["bare tornado (fixed answer)"] = (bare.pid, bare.base, openings(case_id))
        cases = {"cyberhub": (server.pid, server.base), "bare tornado": (bare.pid, bare.base)}
        listing = [{"method": "GET", "path": "/api/cases"}]
        for r in range(args.rounds):
            harness.log(f"round {r + 1} of {args.rounds}")
            flip = (lambda names: names) if r % 2 == 0 else (lambda names: list(reversed(names)))
            if do_open:
                for name in flip(list(opens)):
                    pid, base, requests = opens[name]
                    await run.warm(base, requests)
                    await run.add("POST /api/cases/open (load.mjs)", name, pid, run.closed(base, requests))
            if do_cases:
                for name in flip(list(cases)):
                    pid, base = cases[name]
                    await run.add("GET /api/cases (wrk)", name, pid,
                                  harness.wrk(f"{base}/api/cases", args.wrk_duration, args.inflight))
                for name in flip(list(cases)):
                    pid, base = cases[name]
                    await run.warm(base, listing)
                    await run.add("GET /api/cases (load.mjs)", name, pid, run.closed(base, listing))
        rate = None
        if do_open:
            rate = args.rate or max(1.0, min(run.median("POST /api/cases/open (load.mjs)", n)
                                                 for n in ("cyberhub", "node")) / 2)
            for name in ("cyberhub", "node"):
                pid, base, requests = opens[name]
                harness.log(f"open loop at {rate:.0f}/s on {name}")
                await run.add(f"POST /api/cases/open, open loop {rate:.0f}/s", name, pid,
                              run.load(base, requests, total=args.requests, rate=rate))
        if args.profile:
            seconds = args.profile_seconds
            if do_open:
                _, base, requests = opens["cyberhub"]
                load = asyncio.ensure_future(run.load(base, requests, total=10**6, inflight=args.inflight,
                                                      timeLimit=seconds + 1))
                await profile(server.pid, f"{args.profile}.open.txt", seconds, load)
            if do_cases:
                for pid, base, suffix in ((server.pid, server.base, "cases"), (bare.pid, bare.base, "bare")):
                    load = asyncio.ensure_future(harness.wrk(f"{base}/api/cases", seconds + 1, args.inflight))
                    await profile(pid, f"{args.profile}.{suffix}.txt", seconds, load)
    finally:
        await harness.stop_server(server)
        if node is not None:
            await stop_node(node)
        if bare is not None:
            await harness.stop_bare_tornado(bare)

    bare_loop = "uvloop" if args.bare_uvloop else "the stock asyncio loop"
    print(f"{machine}\n\n{SHARED}; servers measured one after the other in this run. CyberHub on its "
          f"default event loop (uvloop), bare Tornado on {bare_loop}.\n")
    rows = []
    for (scenario, name), figures in run.figures.items():
        mid = sorted(figures, key=lambda f: f["rps"])[len(figures) // 2]
        rounds = " / ".join(f"{f['rps']:,.0f}" for f in figures)
        cpu = statistics.median(f["cpu_us"] for f in figures)
        rows.append([scenario, name, f"{mid['rps']:,.0f}", rounds, f"{mid['p50']:.2f}", f"{mid['p99']:.2f}",
                     f"{cpu:.0f}"])
    print(harness.markdown_table(["scenario", "server", "req/s (median)", "each round", "p50 ms", "p99 ms",
                                  "server CPU µs/request (median)"], rows))
    print()
    # Each ratio: of the medians, and per round (both servers measured back to back in a round).
    ratios: dict[str, dict] = {}

    def ratio(label: str, scenario: str, top: str, bottom: str, figure: str = "rps") -> None:
        a, b = run.figures[(scenario, top)], run.figures[(scenario, bottom)]
        per_round = [x[figure] / y[figure] for x, y in zip(a, b, strict=True)]
        ratios[label] = {"of medians": run.median(scenario, top, figure) / run.median(scenario, bottom, figure),
                         "per round": per_round}

    if do_open:
        opening = "POST /api/cases/open (load.mjs)"
        ratio("openings ÷ Node", opening, "cyberhub", "node")
        ratio("openings, CPU per request: Node's ÷ CyberHub's", opening, "node", "cyberhub", "cpu_us")
        ratio("bare Tornado's fixed answer ÷ Node (Tornado's own ceiling)", opening, "bare tornado (fixed answer)",
              "node")
        ratio("openings ÷ bare Tornado's fixed answer", opening, "cyberhub", "bare tornado (fixed answer)")
    if do_cases:
        for tool in ("wrk", "load.mjs"):
            ratio(f"catalogue ÷ bare Tornado ({tool})", f"GET /api/cases ({tool})", "cyberhub", "bare tornado")
            ratio(f"catalogue, CPU per request: bare Tornado's ÷ CyberHub's ({tool})", f"GET /api/cases ({tool})",
                  "bare tornado", "cyberhub", "cpu_us")
    rows = []
    for label, r in ratios.items():
        target = "≥ 1.0" if label.startswith(("openings ÷ Node", "catalogue ÷")) else ""
        each = r["per round"]
        rows.append([label, f"**{r['of medians']:.2f}**", f"{statistics.median(each):.2f}",
                     " / ".join(f"{x:.2f}" for x in each), target])
    print(harness.markdown_table(["ratio", "of the medians", "median per round", "each round", "target"], rows))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "args": {k: str(v) for k, v in vars(args).items()},
                                         "rate": rate, "catalogue_bytes": len(catalogue), "ratios": ratios,
                                         "figures": [{"scenario": s, "server": n, "rounds": f}
                                                     for (s, n), f in run.figures.items()]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
