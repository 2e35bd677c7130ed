"""The numbers the site is run by, computed from the ledger and the openings
with aggregations (never from counters that can drift).

- summary: ledger entries in [from, to) summed by reason. net = openingRevenue
  + battleEntries − battleRefunds − salesPayout (what play earned the site, as
  for one player: spent + battleSpent − sold); battle winnings are items, so
  they reach money only when sold (salesPayout);
  activePlayers = players who opened a case in the range.
- per case: openings grouped by case and case version; each version's
  recorded odds (`case_versions`) give the expected payout of one opening
  EV_v = Σ w·p / Σ w and its variance Var_v = Σ w·p² / Σ w − EV_v². For n_v
  openings of each version the payout is, by the central limit theorem,
  about normal with mean Σ n_v·EV_v and variance Σ n_v·Var_v; `rtpAlarm` is
  raised when the realized payout is outside the two-sided 99.9 % interval,
  |payout − expected| > 3.2905·σ — a case paying more (or less) than its odds
  say is a bug or an attack.
- timeseries: the summary per hour or per day (UTC), via $dateToString.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from cyberhub.catalogue import cases as catalogue
from cyberhub.platform.errors import BadRequest, NotFound
from cyberhub.store.db import Database

Z_999 = 3.2905  # two-sided 99.9 % quantile of the standard normal distribution
_DATETIME = (r"([1-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):([0-5][0-9]):"
             r"([0-5][0-9])(\.[0-9]{1,6})?(Z|([+-])([01][0-9]|2[0-3]):([0-5][0-9]))")
# ISO-8601 / RFC 3339 date-time with an explicit offset; empty = unbounded.
DATETIME_PATTERN = f"^({_DATETIME})?$"
_DATETIME_RE = re.compile(_DATETIME)
BUCKET_FORMATS = {"hour": "%Y-%m-%dT%H:00:00Z", "day": "%Y-%m-%dT00:00:00Z"}
REASONS = ("payment", "payment_reversal", "case_open", "item_sale", "admin_adjustment", "upgrade",
           "battle_entry", "battle_refund")
_MIN = datetime.min.replace(tzinfo=UTC)
_MAX = datetime.max.replace(tzinfo=UTC)


def parse_datetime(text: str, name: str) -> datetime | None:
    """A day past the month's end rolls over (2026-02-30 is 2026-03-02), and
    instants beyond the representable range are clamped, so that every value
    the pattern allows is answered."""
    if not text:
        return None
    match = _DATETIME_RE.fullmatch(text)
    if match is None:
        raise BadRequest(f"{name} must be an ISO-8601 date-time such as 2026-11-21T00:00:00Z",
                         code="invalid_datetime")
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    micros = int((match[7] or ".0")[1:].ljust(6, "0"))
    offset = timedelta(0)
    if match[8] != "Z":
        offset = timedelta(hours=int(match[10]), minutes=int(match[11])) * (1 if match[9] == "+" else -1)
    try:
        local = datetime(year, month, 1, hour, minute, second, micros, tzinfo=UTC) + timedelta(days=day - 1)
        return local - offset
    except OverflowError:
        return _MAX if year > 5000 else _MIN


def time_range(start: str, end: str, field: str = "createdAt") -> dict:
    since, until = parse_datetime(start, "from"), parse_datetime(end, "to")
    bounds = {**({"$gte": since} if since else {}), **({"$lt": until} if until else {})}
    return {field: bounds} if bounds else {}


def _totals(rows: list[dict]) -> dict[str, int]:
    sums = {r: 0 for r in REASONS}
    counts = {r: 0 for r in REASONS}
    for row in rows:
        reason = row["_id"]["reason"] if isinstance(row["_id"], dict) else row["_id"]
        if reason in sums:
            sums[reason] += row["total"]
            counts[reason] += row["count"]
    revenue, payout = -sums["case_open"], sums["item_sale"]
    entries, refunds = -sums["battle_entry"], sums["battle_refund"]
    return {"deposits": sums["payment"], "reversals": -sums["payment_reversal"], "openings": counts["case_open"],
            "openingRevenue": revenue, "itemsSold": counts["item_sale"], "salesPayout": payout,
            "adjustments": sums["admin_adjustment"], "battleEntries": entries, "battleRefunds": refunds,
            "net": revenue + entries - refunds - payout,
            "upgrades": counts["upgrade"]}  # upgrades move no balance: their ledger entries have delta 0


async def summary(db: Database, *, start: str, end: str) -> dict:
    match = time_range(start, end)
    rows = await db.ledger.aggregate([
        {"$match": match},
        {"$group": {"_id": "$reason", "total": {"$sum": "$delta"}, "count": {"$sum": 1}}},
    ]).to_list(None)
    active = await db.ledger.aggregate([
        {"$match": {"reason": "case_open", **match}},
        {"$group": {"_id": "$userId"}},
        {"$group": {"_id": None, "players": {"$sum": 1}}},
    ]).to_list(None)
    return {**_totals(rows), "activePlayers": active[0]["players"] if active else 0}


async def timeseries(db: Database, *, bucket: str, start: str, end: str) -> list[dict]:
    if bucket not in BUCKET_FORMATS:
        raise BadRequest("bucket must be hour or day", code="invalid_bucket")
    rows = await db.ledger.aggregate([
        {"$match": time_range(start, end)},
        {"$group": {"_id": {"start": {"$dateToString": {"format": BUCKET_FORMATS[bucket], "date": "$createdAt"}},
                            "reason": "$reason"},
                    "total": {"$sum": "$delta"}, "count": {"$sum": 1}}},
    ]).to_list(None)
    by_start: dict[str, list[dict]] = {}
    for row in rows:
        by_start.setdefault(row["_id"]["start"], []).append(row)
    return [{"start": datetime.strptime(key, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC), **_totals(group)}
            for key, group in sorted(by_start.items())]


def version_odds(version: dict) -> tuple[Fraction, Fraction]:
    """(expected payout, variance of the payout) of one opening of `version`, exact."""
    total = sum(i["weight"] for i in version["items"])
    first = Fraction(sum(i["weight"] * i["price"] for i in version["items"]), total)
    second = Fraction(sum(i["weight"] * i["price"] ** 2 for i in version["items"]), total)
    return first, second - first * first


async def per_case(db: Database, *, start: str, end: str) -> list[dict]:
    pipeline = [
        {"$match": time_range(start, end)},
        {"$group": {"_id": {"caseId": "$caseId", "caseVersion": "$caseVersion"}, "openings": {"$sum": 1},
                    "revenue": {"$sum": "$price"}, "payout": {"$sum": "$item.price"}}},
    ]
    rows = await db.openings.aggregate(pipeline).to_list(None)
    # Case battles' draws count as draws of their case version (bots' seats too). The
    # collection is read directly, as admin may not import games; its records have the
    # openings' shape (cyberhub/games/battles/reveal.py writes them).
    rows += await db.battle_draws.aggregate(pipeline).to_list(None)
    cases: dict[str, dict] = {}
    for row in rows:
        case_id, version_no = row["_id"]["caseId"], row["_id"]["caseVersion"]
        entry = cases.setdefault(case_id, {"caseId": case_id, "openings": 0, "revenue": 0, "payout": 0,
                                           "expected": Fraction(0), "variance": Fraction(0)})
        try:
            version = await catalogue.get_version(db, case_id, version_no)
        except NotFound:
            version = None
        n = row["openings"]
        entry["openings"] += n
        entry["revenue"] += row["revenue"]
        entry["payout"] += row["payout"]
        if version is not None:
            mean, variance = version_odds(version)
            entry["expected"] += n * mean
            entry["variance"] += n * variance
    names = {d["_id"]: d["name"] for d in await db.cases.find(
        {"_id": {"$in": list(cases)}}, projection={"name": 1}).to_list(None)}
    result = []
    for case_id, e in sorted(cases.items(), key=lambda kv: (-kv[1]["openings"], kv[0])):
        deviation = abs(e["payout"] - e["expected"])
        sigma = math.sqrt(e["variance"])
        alarm = deviation > Z_999 * sigma if e["variance"] > 0 else deviation > 0
        result.append({
            "caseId": case_id, "name": names.get(case_id), "openings": e["openings"], "revenue": e["revenue"],
            "payout": e["payout"],
            "realizedRtp": e["payout"] / e["revenue"] if e["revenue"] else None,
            "expectedRtp": float(e["expected"] / e["revenue"]) if e["revenue"] else None,
            "expectedPayout": float(e["expected"]), "payoutStdDev": sigma, "rtpAlarm": bool(alarm),
        })
    return result
