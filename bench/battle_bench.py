"""Case battles under load with the official Node client (bench/battles.mjs).

    cd bench && npm ci && cd ..
    python bench/battle_bench.py --battles 100 --watchers 20 --lobby 1000 --rounds 5 --round-seconds 1

Starts `python run.py` (a fresh server, BATTLE_ROUND_SECONDS as given), seeds
one case and 4 × battles funded players through the public API, then the Node
generator connects the lobby viewers, creates every 2v2 battle, has
--watchers anonymous sockets watch each one, and fills each battle with three
joins at once. Reported: join latency p50/p99, round delivery lag p50/p99
against each battle's schedule (startedAt + (r + 1) × round seconds), rounds
lost or out of order, battles that never finished, lobby events. Target (issue 17, 2 cores, generator on the same
machine): 100 battles × 20 watchers, 1 s rounds: round lag p99 ≤ 250 ms, no
round lost or out of order. Results: markdown on stdout, JSON in bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import aiohttp
import harness

BENCH = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--battles", type=int, default=100)
    p.add_argument("--watchers", type=int, default=20, help="sockets watching each battle")
    p.add_argument("--lobby", type=int, default=1000, help="sockets that only see the lobby")
    p.add_argument("--rounds", type=int, default=5, help="cases per battle")
    p.add_argument("--round-seconds", type=float, default=1.0)
    p.add_argument("--client", choices=["default", "websocket"], default="default",
                   help="how watchers and lobby viewers connect: plain io(url) (polling, then the upgrade) "
                        "or websocket only")
    p.add_argument("--label", default="", help="a name for the JSON file")
    return p.parse_args(argv)


async def seed(server: harness.Server, args: argparse.Namespace) -> dict:
    price = harness.CASE_PRICE
    async with aiohttp.ClientSession() as session:
        admin = await harness.admin_token(session, server)
        case_id = await harness.create_case(session, server, admin, "Battle bench", 5)
        stamp = time.strftime("%H%M%S")

        async def player(i: int) -> str:
            user = await harness.register(session, server, f"bb{stamp}_{i}")
            await harness.top_up(session, server, user.id, price * args.rounds * 2)
            return user.token

        tokens = await harness.gather_bounded([lambda i=i: player(i) for i in range(4 * args.battles)], 20)
    return {"caseId": case_id, "players": tokens}


def _remove(path: str) -> None:
    Path(path).unlink(missing_ok=True)


async def run(args: argparse.Namespace) -> dict:
    server = await harness.start_server({
        "BATTLE_ROUND_SECONDS": str(args.round_seconds), "BATTLE_MAX_CASES": str(max(25, args.rounds)),
        "BATTLE_MAX_OPEN_PER_USER": "3", "BATTLE_WAITING_MINUTES": "30",
    })
    try:
        seeded = await seed(server, args)
        plan = {"base": server.base, "battles": args.battles, "watchers": args.watchers, "lobby": args.lobby,
                "rounds": args.rounds, "roundSeconds": args.round_seconds, **seeded,
                "transports": None if args.client == "default" else ["websocket"],
                "timeoutMs": int((args.rounds * args.round_seconds + 120) * 1000)}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(plan, f)
        try:
            proc = await asyncio.create_subprocess_exec("node", str(BENCH / "battles.mjs"), f.name,
                                                        stdout=asyncio.subprocess.PIPE, stderr=None)
            out, _ = await asyncio.wait_for(proc.communicate(), 1800)
        finally:
            _remove(f.name)
        if proc.returncode != 0:
            raise RuntimeError(f"bench/battles.mjs failed ({proc.returncode}); server log:\n{server.log_tail()}")
        return json.loads(out)
    finally:
        await harness.stop_server(server)


def report(result: dict, args: argparse.Namespace) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    rows = [[str(result["battles"]), str(args.watchers), str(result["lobby"]), str(result["rounds"]),
             f"{args.round_seconds:g}", ms(result["joinMs"]["p50"]), ms(result["joinMs"]["p99"]),
             ms(result["roundLagMs"]["p50"]), ms(result["roundLagMs"]["p99"]), ms(result["roundLagMs"]["max"]),
             f"{result['roundsLost']}/{result['roundsExpected']}", str(result["outOfOrder"]),
             str(result["unfinished"])]]
    return harness.markdown_table(
        ["battles", "watchers each", "lobby", "rounds", "round s", "join p50 ms", "join p99 ms", "round lag p50 ms",
         "round lag p99 ms", "round lag max ms", "rounds lost", "out of order", "unfinished watchers"], rows)


def main() -> None:
    args = parse_args()
    print(harness.machine_line())
    result = asyncio.run(run(args))
    print(report(result, args))
    print(f"\n{harness.save_results('battles', args.label, {'result': result})}")


if __name__ == "__main__":
    main()
