"""Provably fair draws, "Stake standard" (README.md, "Provably fair").

A server seed is 32 random bytes written as 64 lowercase hex characters; that
text is both what is hashed for the public commitment and the HMAC key:

    d = HMAC-SHA256(key=server_seed, msg=f"{client_seed}:{nonce}:{cursor}")
    f = d[0]/256 + d[1]/256**2 + d[2]/256**3 + d[3]/256**4      # in [0, 1)
    ticket = floor(f * total_weight)

and the item drawn is the one whose cumulative weight interval, in the order
the case version lists its items, contains the ticket. Pure functions only.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass


def new_server_seed() -> str:
    return secrets.token_hex(32)


def new_client_seed() -> str:
    return secrets.token_hex(10)


def hash_server_seed(server_seed: str) -> str:
    return hashlib.sha256(server_seed.encode("utf-8")).hexdigest()


def new_seed_pair(client_seed: str | None = None) -> dict:
    """A fresh committed seed pair as stored on the user (nonce 0)."""
    seed = new_server_seed()
    return {
        "serverSeed": seed,
        "serverSeedHash": hash_server_seed(seed),
        "clientSeed": client_seed if client_seed is not None else new_client_seed(),
        "nonce": 0,
    }


def stake_float(key: str, message: str) -> float:
    """The Stake float of HMAC-SHA256(key, message): its first four bytes as a fraction in [0, 1)."""
    digest = hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()
    return sum(byte / 256 ** (i + 1) for i, byte in enumerate(digest[:4]))


def roll(server_seed: str, client_seed: str, nonce: int, cursor: int = 0) -> float:
    return stake_float(server_seed, f"{client_seed}:{nonce}:{cursor}")


def pick_index(weights: Sequence[int], f: float) -> tuple[int, int]:
    """(ticket, index of the item whose cumulative-weight interval holds the ticket)."""
    ticket = math.floor(f * sum(weights))
    upper = 0
    for index, weight in enumerate(weights):
        upper += weight
        if ticket < upper:
            return ticket, index
    raise ValueError("ticket outside the total weight")  # unreachable while 0 <= f < 1


@dataclass(frozen=True)
class Draw:
    roll: float
    ticket: int
    index: int


def draw(server_seed: str, client_seed: str, nonce: int, weights: Sequence[int]) -> Draw:
    f = roll(server_seed, client_seed, nonce)
    ticket, index = pick_index(weights, f)
    return Draw(roll=f, ticket=ticket, index=index)
