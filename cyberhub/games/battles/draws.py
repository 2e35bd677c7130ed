"""Battle fairness (README.md, "Case battles"): pure functions, no store.

- At creation: a fresh server seed (64 lowercase hex) and its SHA-256 commitment.
- Each seat's client seed: the player's current client seed, bots "bot:<slot>".
- At the start: publicSeed = hex SHA-256 of the seats' client seeds joined by ":".
- Round r, slot s: f = Stake float of HMAC-SHA256(serverSeed, "<publicSeed>:<r>:<s>"),
  item = cumulative-weight interval of that round's case version holding floor(f × total).
- Winner: highest team total (crazy: lowest); a tie goes to the team with the
  highest f of "<publicSeed>:tiebreak:<team>".
- The winning team's human seats get every item, most valuable first, each to
  the seat with the lowest share so far (ties: lower slot).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from cyberhub.catalogue import fairness

MODES: dict[str, list[int]] = {  # mode -> team of each slot
    "1v1": [0, 1],
    "1v1v1": [0, 1, 2],
    "1v1v1v1": [0, 1, 2, 3],
    "2v2": [0, 0, 1, 1],
}


def new_server_seed() -> tuple[str, str]:
    """(server seed, its public SHA-256 commitment)."""
    seed = fairness.new_server_seed()
    return seed, fairness.hash_server_seed(seed)


def public_seed(client_seeds: Sequence[str]) -> str:
    return hashlib.sha256(":".join(client_seeds).encode("utf-8")).hexdigest()


def draw_rounds(server_seed: str, seed: str, versions: Sequence[dict], seats: int) -> list[list[dict]]:
    """Every round's draw for every slot: [{itemIndex, roll, ticket, item}]."""
    rounds = []
    for r, version in enumerate(versions):
        weights = [i["weight"] for i in version["items"]]
        row = []
        for s in range(seats):
            f = fairness.stake_float(server_seed, f"{seed}:{r}:{s}")
            ticket, index = fairness.pick_index(weights, f)
            item = version["items"][index]
            row.append({"slot": s, "itemIndex": index, "roll": f, "ticket": ticket,
                        "item": {k: item.get(k) for k in ("id", "name", "rarity", "price", "image")}})
        rounds.append(row)
    return rounds


def slot_totals(rounds: Sequence[Sequence[dict]], seats: int) -> list[int]:
    totals = [0] * seats
    for row in rounds:
        for result in row:
            totals[result["slot"]] += result["item"]["price"]
    return totals


def winning_team(server_seed: str, seed: str, teams: Sequence[int], totals: Sequence[int], *, crazy: bool) -> int:
    by_team: dict[int, int] = {}
    for slot, team in enumerate(teams):
        by_team[team] = by_team.get(team, 0) + totals[slot]
    best = (min if crazy else max)(by_team.values())
    tied = [team for team, value in sorted(by_team.items()) if value == best]
    if len(tied) == 1:
        return tied[0]
    return max(tied, key=lambda team: fairness.stake_float(server_seed, f"{seed}:tiebreak:{team}"))


def allocate(rounds: Sequence[Sequence[dict]], receivers: Sequence[int]) -> dict[tuple[int, int], int]:
    """(round, slot) of each drawn item -> the receiving slot. Most valuable
    first (equal prices: earlier round, then lower slot), each to the receiver
    with the lowest share so far (ties: lower slot). No receivers (a bots-only
    winning team): the house keeps everything, nothing is allocated."""
    if not receivers:
        return {}
    share = {slot: 0 for slot in receivers}
    order = sorted(((result["item"]["price"], r, result["slot"]) for r, row in enumerate(rounds) for result in row),
                   key=lambda t: (-t[0], t[1], t[2]))
    owner = {}
    for price, r, s in order:
        to = min(receivers, key=lambda slot: (share[slot], slot))
        owner[(r, s)] = to
        share[to] += price
    return owner


def outcome(battle: dict) -> dict:
    """Everything decided at the start, from the seeds alone."""
    seats = battle["slots"]
    seed = public_seed([s["clientSeed"] for s in seats])
    rounds = draw_rounds(battle["serverSeed"], seed, battle["cases"], battle["size"])
    totals = slot_totals(rounds, battle["size"])
    team = winning_team(battle["serverSeed"], seed, battle["teams"], totals, crazy=battle["crazy"])
    winners = [i for i, t in enumerate(battle["teams"]) if t == team]
    owners = allocate(rounds, [i for i in winners if not seats[i]["bot"]])
    for r, row in enumerate(rounds):
        for result in row:
            result["owner"] = owners.get((r, result["slot"]))
    return {"publicSeed": seed, "draws": rounds, "finalTotals": totals, "winners": winners}


def item_id(battle_id: str, round_no: int, slot: int) -> str:
    """The inventory id of the item drawn in (round, slot): derived, so settling
    twice inserts nothing twice; 32 hex characters like every inventory id."""
    return hashlib.sha256(f"battle:{battle_id}:{round_no}:{slot}".encode()).hexdigest()[:32]
