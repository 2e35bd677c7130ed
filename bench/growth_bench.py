"""Growth benchmark: does the service stay as fast after 100,000 openings as on an
empty store? (embedded store, one `python run.py` process)

Seeds through the public API: --cases cases, each edited once (so every case has
a version history), all but --active of them then deleted; --users users, each
topped up through signed payment webhooks. Then it alternates:

  measure every endpoint  →  open cases until the store holds the next checkpoint
  (0, 20,000, 40,000, … --openings stored openings)

The load generator is bench/load.mjs (Node's http module, --inflight requests in
flight, latency from when each request was due); GET /api/cases is also measured
with wrk, against bare Tornado (bench/bare_tornado.py) serving the same bytes in
the same run. Measured at each checkpoint:

  POST /api/cases/open (plain, and with a fresh Idempotency-Key each),
  POST /api/inventory/claim, GET /api/inventory, GET /api/profile,
  GET /api/stats/public, GET /api/cases, GET /health.

Prints markdown tables; --json writes every figure, --plot a PNG (needs matplotlib)
of throughput against stored openings. Example:

    flock /tmp/cyberhub-bench.lock python bench/growth_bench.py --plot bench/growth.png
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import secrets
import sys
import time
from pathlib import Path

import aiohttp
import harness
from harness import Server, User

BENCH = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--cases", type=int, default=1_000, help="cases created (and edited once)")
    p.add_argument("--active", type=int, default=10, help="cases left active (the rest are deleted)")
    p.add_argument("--items", type=int, default=20, help="items per case")
    p.add_argument("--openings", type=int, default=100_000, help="stored openings at the last checkpoint")
    p.add_argument("--step", type=int, default=20_000, help="openings between checkpoints")
    p.add_argument("--inflight", type=int, default=50)
    p.add_argument("--measure", type=int, default=3_000, help="requests per measured scenario")
    p.add_argument("--warmup", type=int, default=300, help="unmeasured requests before each scenario")
    p.add_argument("--wrk-duration", type=int, default=5)
    p.add_argument("--seed-concurrency", type=int, default=16)
    p.add_argument("--json", type=Path, help="write every figure here")
    p.add_argument("--plot", type=Path, help="write a PNG plot here (needs matplotlib)")
    return p.parse_args(argv)


class Bench:
    def __init__(self, server: Server, session: aiohttp.ClientSession, args: argparse.Namespace) -> None:
        self.server, self.session, self.args = server, session, args
        self.users: list[User] = []
        self.case_ids: list[str] = []
        self.stored = 0  # openings in the store (every successful POST /api/cases/open)
        self.rng = random.Random(20261122)
        self.tag = secrets.token_hex(3)

    def auth(self, user: User) -> dict:
        return {"Authorization": f"Bearer {user.token}"}

    # -- seeding ------------------------------------------------------------------
    async def seed(self) -> None:
        a, s, srv = self.args, self.session, self.server
        admin = await harness.admin_token(s, srv)
        hdr = {"Authorization": f"Bearer {admin}"}
        t0 = time.perf_counter()
        ids = await harness.gather_bounded(
            [lambda i=i: harness.create_case(s, srv, admin, f"growth_{i}", a.items) for i in range(a.cases)],
            a.seed_concurrency)

        async def edit(i: int, case_id: str) -> None:
            body = harness.case_body(f"growth_{i}_v2", a.items)
            async with s.put(f"{srv.base}/api/admin/cases/{case_id}", json=body, headers=hdr) as r:
                await harness._json(r, 200)
            if i >= a.active:
                async with s.delete(f"{srv.base}/api/admin/cases/{case_id}", headers=hdr) as r:
                    await harness._json(r, 200)

        await harness.gather_bounded([lambda i=i, c=c: edit(i, c) for i, c in enumerate(ids)], a.seed_concurrency)
        self.case_ids = ids[: a.active]
        harness.log(f"{a.cases} cases created, edited, {a.cases - a.active} deleted "
                    f"in {time.perf_counter() - t0:.0f} s")
        t0 = time.perf_counter()
        self.users = await harness.gather_bounded(
            [lambda i=i: harness.register(s, srv, f"g{self.tag}_{i}") for i in range(a.users)], a.seed_concurrency)
        harness.log(f"{a.users} users registered in {time.perf_counter() - t0:.0f} s")
        # Enough for every opening of the run, spread round-robin, twice over.
        per_user = 2 * math.ceil((a.openings + 12 * a.measure) / a.users) * harness.CASE_PRICE
        t0 = time.perf_counter()
        await harness.gather_bounded([lambda u=u: harness.top_up(s, srv, u.id, per_user) for u in self.users],
                                     a.seed_concurrency)
        harness.log(f"users topped up with {per_user} each in {time.perf_counter() - t0:.0f} s")

    # -- load ---------------------------------------------------------------------
    def open_requests(self, n: int) -> list[dict]:
        start = self.rng.randrange(len(self.users))
        return [{"method": "POST", "path": "/api/cases/open", "headers": self.auth(self.users[(start + i) % len(
            self.users)]), "body": {"caseId": self.rng.choice(self.case_ids)}} for i in range(n)]

    async def run(self, requests: list[dict], total: int, *, key: str | None = None, bins: bool = False,
                  expect: tuple[int, ...] = (200,)) -> dict:
        plan = {"base": self.server.base, "requests": requests, "total": total, "inflight": self.args.inflight,
                "timeLimit": 600, "expect": list(expect), "bins": bins}
        if key:
            plan["idempotencyPrefix"] = key
        result = await harness.node_load(plan)
        if result["errors"]:
            raise RuntimeError(f"errors in a load run: {result['statuses']}")
        return result

    async def opens(self, total: int, *, key: bool = False, bins: bool = False) -> dict:
        result = await self.run(self.open_requests(min(total, 20_000)), total,
                                key=f"g{self.tag}-{self.stored}" if key else None, bins=bins)
        self.stored += result["ok"]
        return result

    async def claim_requests(self, n: int) -> list[dict]:
        """Owned items of randomly chosen users, read through the API (not measured)."""
        found: list[dict] = []

        async def owned(user: User) -> list[dict]:
            async with self.session.get(f"{self.server.base}/api/inventory?limit=100", headers=self.auth(user)) as r:
                items = (await harness._json(r, 200))["items"]
            return [{"method": "POST", "path": "/api/inventory/claim", "headers": self.auth(user),
                     "body": {"itemId": i["id"]}} for i in items if i["status"] == "owned"]

        users = self.rng.sample(self.users, len(self.users))
        for at in range(0, len(users), 256):
            for batch in await harness.gather_bounded([lambda u=u: owned(u) for u in users[at:at + 256]], 16):
                found += batch
            if len(found) >= n:
                break
        return found[:n]

    async def measure(self) -> dict:
        a = self.args
        users = self.users
        gets = {
            "GET /api/inventory": [{"path": "/api/inventory?limit=20", "headers": self.auth(u)} for u in users],
            "GET /api/profile": [{"path": "/api/profile", "headers": self.auth(u)} for u in users],
            "GET /api/stats/public": [{"path": "/api/stats/public"}],
            "GET /api/cases": [{"path": "/api/cases"}],
            "GET /health": [{"path": "/health"}],
        }
        stored_before = self.stored
        figures: dict[str, dict] = {}
        await self.opens(a.warmup)
        figures["POST /api/cases/open"] = await self.opens(a.measure)
        await self.opens(a.warmup, key=True)
        figures["POST /api/cases/open + Idempotency-Key"] = await self.opens(a.measure, key=True)
        claims = await self.claim_requests(a.measure + a.warmup)
        await self.run(claims[: a.warmup], a.warmup)
        figures["POST /api/inventory/claim"] = await self.run(claims[a.warmup:], len(claims) - a.warmup)
        for name, requests in gets.items():
            await self.run(requests, a.warmup)
            figures[name] = await self.run(requests, a.measure)
        figures["GET /api/cases (wrk)"] = await harness.wrk(f"{self.server.base}/api/cases", a.wrk_duration, a.inflight)
        for name, fig in figures.items():
            harness.log(f"  {name}: {fig['rps']:.0f}/s")
        return {"stored": stored_before, "rss_mib": harness.rss_kib(self.server.pid) / 1024, "figures": figures}

    async def bare_tornado(self) -> dict:
        """wrk against bare Tornado serving the same catalogue bytes, then against this server again."""
        async with self.session.get(f"{self.server.base}/api/cases") as r:
            body = await r.read()
        bare = await harness.start_bare_tornado(body)
        try:
            figures = await harness.wrk(f"{bare.base}/api/cases", self.args.wrk_duration, self.args.inflight)
        finally:
            await harness.stop_bare_tornado(bare)
        ours = await harness.wrk(f"{self.server.base}/api/cases", self.args.wrk_duration, self.args.inflight)
        return {"bytes": len(body), "bare": figures, "ours": ours}


def table(checkpoints: list[dict]) -> str:
    names = list(checkpoints[0]["figures"])
    head = ["scenario"] + [f"{c['stored']:,} stored" for c in checkpoints] + ["last / first"]
    rows = []
    for name in names:
        cells = [name]
        for c in checkpoints:
            f = c["figures"][name]
            cells.append(f"{f['rps']:,.0f}/s (p50 {f['p50']:.1f}, p99 {f['p99']:.1f} ms)")
        first, last = checkpoints[0]["figures"][name]["rps"], checkpoints[-1]["figures"][name]["rps"]
        cells.append(f"{last / first:.2f}")
        rows.append(cells)
    rows.append(["server RSS"] + [f"{c['rss_mib']:.0f} MiB" for c in checkpoints] + [""])
    return harness.markdown_table(head, rows)


def fill_table(fills: list[dict]) -> str:
    rows = []
    for f in fills:
        r = f["result"]
        rows.append([f"{f['from']:,} → {f['to']:,}", f"{r['rps']:,.0f}", f"{r['p50']:.1f}", f"{r['p99']:.1f}",
                     f"{r['firstQuarterRps']:,.0f} → {r['lastQuarterRps']:,.0f}",
                     f"{r['lastQuarterRps'] / r['firstQuarterRps']:.2f}"])
    return harness.markdown_table(["stored openings", "opens/s", "p50 ms", "p99 ms", "first¼ → last¼ /s",
                                   "last¼ / first¼"], rows)


def plot(path: Path, checkpoints: list[dict], fills: list[dict], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 9))
    for f in fills:  # openings/s over each fill, per second, against the openings stored at that moment
        stored, xs, ys = f["from"], [], []
        for count in f["result"]["bins"]:
            stored += count
            xs.append(stored)
            ys.append(count)
        top.plot(xs, ys, color="tab:blue", linewidth=0.8)
    top.set_xlabel("openings stored")
    top.set_ylabel("POST /api/cases/open answered per second")
    top.set_title("Openings while the store fills (50 in flight)")
    top.set_ylim(bottom=0)
    top.grid(alpha=0.3)
    xs = [c["stored"] for c in checkpoints]
    for name in checkpoints[0]["figures"]:
        ys = [c["figures"][name]["rps"] for c in checkpoints]
        bottom.plot(xs, ys, marker="o", label=name)
    bottom.set_yscale("log")
    bottom.set_xlabel("openings stored")
    bottom.set_ylabel("requests per second (log)")
    bottom.set_title("Every endpoint at each checkpoint")
    bottom.grid(alpha=0.3, which="both")
    bottom.legend(fontsize=7, ncol=2)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


async def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = harness.machine_line()
    harness.log(machine)
    server = await harness.start_server()
    started = time.time()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            bench = Bench(server, session, args)
            await bench.seed()
            checkpoints, fills = [], []
            target = 0
            while True:
                harness.log(f"measuring with {bench.stored:,} openings stored")
                checkpoints.append(await bench.measure())
                if bench.stored >= args.openings:
                    break
                target = min(args.openings, max(target + args.step, bench.stored + 1))
                before = bench.stored
                harness.log(f"filling {before:,} → {target:,}")
                result = await bench.opens(target - before, bins=True)
                fills.append({"from": before, "to": bench.stored, "result": result})
                harness.log(f"  {result['rps']:.0f} opens/s, first¼ {result['firstQuarterRps']} → last¼ "
                    f"{result['lastQuarterRps']}")
            comparison = await bench.bare_tornado()
    finally:
        await harness.stop_server(server)
    report = {"machine": machine, "args": {k: str(v) for k, v in vars(args).items()}, "seconds": time.time() - started,
              "checkpoints": checkpoints, "fills": fills, "comparison": comparison}
    print(f"{machine}\n")
    print(f"Every endpoint at each checkpoint (Node load.mjs, {args.inflight} in flight, {args.measure} requests; "
          "GET /api/cases also with wrk):\n")
    print(table(checkpoints))
    print("\nOpenings while filling the store:\n")
    print(fill_table(fills))
    c = comparison
    print(f"\nGET /api/cases ({c['bytes']:,} bytes), wrk -t2 -c{args.inflight} -d{args.wrk_duration}s: this server "
          f"{c['ours']['rps']:,.0f}/s (p50 {c['ours']['p50']:.2f} ms), bare Tornado {c['bare']['rps']:,.0f}/s "
          f"(p50 {c['bare']['p50']:.2f} ms): ratio {c['ours']['rps'] / c['bare']['rps']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    if args.plot:
        plot(args.plot, checkpoints, fills, f"{machine[:160]}")
        harness.log(f"plot written to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
