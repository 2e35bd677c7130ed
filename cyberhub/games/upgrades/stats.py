"""Back-office numbers of upgrades and their RTP alarm, from the upgrade records.

Each upgrade pays its target's value with probability `chance`, else 0, so
with T = targetValue its payout has mean chance·T and variance
chance·(1 − chance)·T². Over n upgrades the payout is, by the central limit
theorem, about normal with mean Σ chance·T and variance Σ chance(1 − chance)·T²;
`rtpAlarm` is raised when the realized payout lies outside the two-sided
99.9 % interval (±3.2905 σ) — the rule admin/stats.py applies to cases.
RTP = payout / stakeValue (the items staked are what the player gave up).
"""

from __future__ import annotations

import math

from cyberhub.store.db import Database

Z_999 = 3.2905  # two-sided 99.9 % quantile of the standard normal (as admin/stats.py for cases)


async def summary(db: Database, match: dict) -> dict:
    """`match`: the time filter on `createdAt` (the handler builds it from from/to)."""
    rows = await db.upgrades.aggregate([
        {"$match": match},
        {"$group": {
            "_id": None, "upgrades": {"$sum": 1}, "wins": {"$sum": {"$cond": ["$won", 1, 0]}},
            "stakeValue": {"$sum": "$stakeValue"}, "payout": {"$sum": "$payout"},
            "expected": {"$sum": {"$multiply": ["$chance", "$targetValue"]}},
            "variance": {"$sum": {"$multiply": ["$chance", {"$subtract": [1, "$chance"]},
                                                "$targetValue", "$targetValue"]}},
        }},
    ]).to_list(None)
    row = rows[0] if rows else {"upgrades": 0, "wins": 0, "stakeValue": 0, "payout": 0, "expected": 0.0,
                                "variance": 0.0}
    expected, variance = float(row["expected"]), max(float(row["variance"]), 0.0)
    sigma = math.sqrt(variance)
    deviation = abs(row["payout"] - expected)
    # A tiny tolerance: with σ = 0 (every chance 0 or 1) only float noise may differ.
    alarm = deviation > Z_999 * sigma if variance > 0 else deviation > 1e-6 * max(1.0, expected)
    stake = row["stakeValue"]
    return {
        "upgrades": row["upgrades"], "wins": row["wins"], "stakeValue": stake, "payout": row["payout"],
        "expectedPayout": expected, "payoutStdDev": sigma,
        "realizedRtp": row["payout"] / stake if stake else None,
        "expectedRtp": expected / stake if stake else None,
        "rtpAlarm": bool(alarm),
    }
