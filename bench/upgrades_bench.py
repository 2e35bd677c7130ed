"""Upgrades/s beside openings/s, on the same server in the same run.

Starts `python run.py` (embedded store, free 127.0.0.1 port, generated secrets),
seeds through the public API — a one-item "fodder" case whose every opening
gives a 100-cent item, a target case (items at 250, 500 and 1000 cents: chances
0.36, 0.18 and 0.09 for one staked item), a regular case to open, and --users
users topped up through signed webhooks — then opens fodder cases until there
is one staked item for every upgrade to be measured (each upgrade uses one
item up, for good). Then, with bench/load.mjs (Node's http; latency counted
from when each request was *due*):

  1. closed loop, --inflight in flight: POST /api/cases/open (users round-robin)
     and POST /api/upgrades (one item each, users round-robin): capacity;
  2. open loop at --rate requests/s (default: half the smaller capacity of
     step 1) for both, alternating which goes first: latency at a load both can
     carry, no coordinated omission.

Prints a markdown table and the ratio upgrades/s ÷ openings/s (target ≥ 0.8).

    python bench/upgrades_bench.py --requests 3000 --inflight 50 --users 200
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from pathlib import Path

import aiohttp
import harness

BENCH = Path(__file__).resolve().parent
FODDER = {"name": "bench_fodder", "price": 100,
          "items": [{"name": "Fodder", "rarity": "common", "price": 100, "weight": 1}]}
TARGETS = {"name": "bench_targets", "price": 100,
           "items": [{"name": f"Prize {p}", "rarity": "epic", "price": p, "weight": 1} for p in (250, 500, 1000)]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=3000, help="requests per scenario and phase (default 3000)")
    p.add_argument("--inflight", type=int, default=50, help="requests in flight in the closed loop (default 50)")
    p.add_argument("--rate", type=float, default=None,
                   help="open-loop requests/s (default: half the smaller closed-loop capacity)")
    p.add_argument("--users", type=int, default=200, help="players (default 200)")
    p.add_argument("--warmup", type=int, default=200, help="unmeasured requests of each kind first")
    p.add_argument("--time-limit", type=float, default=120.0, help="seconds at most per scenario")
    p.add_argument("--seed-inflight", type=int, default=50, help="requests in flight while seeding items")
    args = p.parse_args(argv)
    if min(args.requests, args.inflight, args.users, args.seed_inflight) < 1 or args.warmup < 0:
        p.error("--requests, --inflight, --users and --seed-inflight must be at least 1")
    return args


async def create(session: aiohttp.ClientSession, server: harness.Server, token: str, body: dict) -> dict:
    async with session.post(f"{server.base}/api/admin/cases", json=body,
                            headers={"Authorization": f"Bearer {token}"}) as r:
        if r.status != 201:
            raise RuntimeError(f"case creation: HTTP {r.status}")
        return (await r.json())["case"]


async def owned_items(session: aiohttp.ClientSession, server: harness.Server, user: harness.User) -> list[str]:
    ids: list[str] = []
    cursor = ""
    while True:
        async with session.get(f"{server.base}/api/inventory?limit=100&cursor={cursor}",
                               headers={"Authorization": f"Bearer {user.token}"}) as r:
            body = await r.json()
        ids += [i["id"] for i in body["items"] if i["status"] == "owned"]
        cursor = body["nextCursor"]
        if not cursor:
            return ids


def bearer(user: harness.User) -> dict:
    return {"Authorization": f"Bearer {user.token}"}


async def main(args: argparse.Namespace) -> int:
    harness.log(harness.machine_line())
    server = await harness.start_server()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
            admin = await harness.admin_token(session, server)
            fodder = await create(session, server, admin, FODDER)
            targets = await create(session, server, admin, TARGETS)
            case_id = await harness.create_case(session, server, admin, "bench_case", 10)
            tag = secrets.token_hex(3)
            users = await harness.gather_bounded(
                [lambda i=i: harness.register(session, server, f"upg_{tag}_{i}") for i in range(args.users)], 8)
            per_phase = args.requests * 2 + args.warmup  # closed + open loop, plus warm-up
            opens_each = -(-per_phase // args.users)
            upgrades_each = opens_each
            # Fodder for the upgrades and the price of the measured openings, 10 % to spare.
            amount = int((opens_each + upgrades_each) * 100 * 1.1) + 1000
            await harness.gather_bounded(
                [lambda u=u: harness.top_up(session, server, u.id, amount) for u in users], 8)
            harness.log(f"seeding {upgrades_each * len(users)} fodder items")
            seeded = await harness.node_load({
                "base": server.base, "inflight": args.seed_inflight, "total": upgrades_each * len(users),
                "timeLimit": 3600, "requests": [{"method": "POST", "path": "/api/cases/open", "headers": bearer(u),
                                                 "body": {"caseId": fodder["id"]}} for u in users]})
            if seeded["errors"]:
                raise RuntimeError(f"seeding failed: {seeded['statuses']}")
            items = {u.id: await owned_items(session, server, u) for u in users}
            # Round-robin over the players, one item per upgrade.
            queue = [(u, items[u.id][r]) for r in range(upgrades_each) for u in users if r < len(items[u.id])]
            harness.log(f"{len(queue)} items to stake")

        def upgrade_requests(start: int, count: int) -> list[dict]:
            picked = queue[start:start + count]
            if len(picked) < count:
                raise RuntimeError("not enough seeded items")
            return [{"method": "POST", "path": "/api/upgrades", "headers": bearer(u),
                     "body": {"itemIds": [item], "caseId": targets["id"],
                              "targetItemId": targets["items"][n % 3]["id"]}}
                    for n, (u, item) in enumerate(picked)]

        open_requests = [{"method": "POST", "path": "/api/cases/open", "headers": bearer(u),
                          "body": {"caseId": case_id}} for u in users]
        used = 0

        async def run(kind: str, total: int, **mode: object) -> dict:
            nonlocal used
            if kind == "upgrades":
                requests, used = upgrade_requests(used, total), used + total
            else:
                requests = open_requests
            return await harness.node_load({"base": server.base, "total": total, "timeLimit": args.time_limit,
                                    "requests": requests, **mode})

        if args.warmup:
            await run("openings", args.warmup, inflight=args.inflight)
            await run("upgrades", args.warmup, inflight=args.inflight)
        results: dict[str, dict] = {}
        for kind in ("openings", "upgrades"):
            harness.log(f"closed loop: {kind}")
            results[f"{kind} closed"] = await run(kind, args.requests, inflight=args.inflight)
        rate = args.rate or max(1.0, min(results["openings closed"]["rps"], results["upgrades closed"]["rps"]) / 2)
        for kind in ("upgrades", "openings"):
            harness.log(f"open loop at {rate:.0f}/s: {kind}")
            results[f"{kind} open"] = await run(kind, args.requests, rate=rate)
    finally:
        await harness.stop_server(server)

    rows = []
    for name, r in results.items():
        mode = f"{args.inflight} in flight" if name.endswith("closed") else f"{rate:.0f}/s open loop"
        rows.append([name.split()[0], mode, f"{r['rps']:.0f}", f"{r['p50']:.1f}", f"{r['p95']:.1f}",
                     f"{r['p99']:.1f}", f"{r['max']:.1f}", str(r["errors"])])
    print(harness.markdown_table(["scenario", "load", "ok/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"], rows))
    ratio = results["upgrades closed"]["rps"] / results["openings closed"]["rps"]
    print(f"\nupgrades/s ÷ openings/s (closed loop): {ratio:.2f} (target ≥ 0.8)")
    return 1 if any(r["errors"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
