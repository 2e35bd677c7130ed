"""Provably fair draws: Stake-standard vectors, the distribution, and the
fair endpoints (commit, reveal by rotation, verify a past opening)."""

from __future__ import annotations

import bisect
import hashlib
import hmac
import itertools
from collections import Counter

from cyberhub.catalogue import fairness
from tests.test_economy import create_case, funded_user

SEED_A = "a3c1e09f6b7d2c48e5f1a9b0c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f50"
# (server seed, client seed, nonce, weights) -> first 4 HMAC bytes as printed by
# `printf '%s' "<client>:<nonce>:0" | openssl dgst -sha256 -hmac "<server seed>"`,
# the ticket, and the index of the item drawn.
VECTORS = [
    (SEED_A, "lucky-client", 0, [70, 25, 5], "1e96f1f8", 11, 0),
    (SEED_A, "lucky-client", 1, [70, 25, 5], "ce1694df", 80, 1),
    ("0" * 64, "player: seed with spaces", 41, [70, 25, 5], "5a32979e", 35, 0),
    ("f" * 64, "x", 999999, [1, 1, 1], "afca0ec2", 2, 2),
]
# sha256 of the seed's 64-character text, from `printf '%s' "<seed>" | openssl dgst -sha256`
SEED_A_HASH = "8d823612d6c9fe1b4800591e30be579ed7d2cbc39f3a75e0693c55fc9474cdec"


def independent_draw(server_seed: str, client_seed: str, nonce: int, weights: list[int]) -> tuple[float, int, int]:
    """A second implementation, written from the spec with integer arithmetic
    and bisect, to check the service's one against."""
    digest = hmac.new(server_seed.encode(), f"{client_seed}:{nonce}:0".encode(), hashlib.sha256).digest()
    numerator = int.from_bytes(digest[:4], "big")
    ticket = numerator * sum(weights) // 2**32
    index = bisect.bisect_right(list(itertools.accumulate(weights)), ticket)
    return numerator / 2**32, ticket, index


def test_fixed_vectors_match_openssl_and_an_independent_implementation():
    for server, client, nonce, weights, hex4, ticket, index in VECTORS:
        expected_roll = int(hex4, 16) / 2**32
        assert independent_draw(server, client, nonce, weights) == (expected_roll, ticket, index)
        drawn = fairness.draw(server, client, nonce, weights)
        assert (drawn.roll, drawn.ticket, drawn.index) == (expected_roll, ticket, index)
    assert fairness.hash_server_seed(SEED_A) == SEED_A_HASH


def test_service_and_independent_implementation_agree_on_many_draws():
    weights = [1, 7, 300, 2, 90_000, 5]
    for nonce in range(5000):
        f, ticket, index = independent_draw(SEED_A, "agree", nonce, weights)
        drawn = fairness.draw(SEED_A, "agree", nonce, weights)
        assert (drawn.roll, drawn.ticket, drawn.index) == (f, ticket, index)


def chi_square(observed: Counter, weights: list[int], draws: int) -> float:
    total = sum(weights)
    return sum((observed[i] - draws * w / total) ** 2 / (draws * w / total) for i, w in enumerate(weights))


def test_100000_draws_follow_the_weights():
    """Fixed seeds make this deterministic. Critical value of χ² with 4 degrees
    of freedom at p = 0.001 is 18.467; the same draws checked against wrong
    weights must fail it, so the check can tell."""
    weights, draws = [500, 250, 150, 90, 10], 100_000
    observed = Counter(fairness.draw(SEED_A, "distribution", n, weights).index for n in range(draws))
    assert chi_square(observed, weights, draws) < 18.467
    assert chi_square(observed, [500, 250, 150, 80, 20], draws) > 18.467
    assert all(observed[i] > 0 for i in range(len(weights)))


def test_new_seed_pairs_commit_to_64_hex_and_use_secrets():
    pair = fairness.new_seed_pair()
    assert len(pair["serverSeed"]) == 64 and int(pair["serverSeed"], 16) >= 0
    assert pair["serverSeedHash"] == hashlib.sha256(pair["serverSeed"].encode()).hexdigest()
    assert pair["nonce"] == 0
    assert len({fairness.new_server_seed() for _ in range(100)}) == 100


async def test_verify_reproduces_a_past_opening_after_rotation_and_edit(live, sample_case):
    case = await create_case(live, sample_case)
    token, _ = await funded_user(live, "verifier", 1500)
    committed = (await live.api.get("/api/fair", token=token)).body["fair"]
    opened = [(await live.api.post("/api/cases/open", {"caseId": case["id"]}, token=token)).body
              for _ in range(3)]
    assert [o["fair"]["nonce"] for o in opened] == [0, 1, 2]
    assert all(o["fair"]["serverSeedHash"] == committed["serverSeedHash"] for o in opened)

    # The admin edits the case: old openings must still verify against their version.
    edited = {**sample_case, "items": list(reversed(sample_case["items"]))}
    admin = await live.admin_token()
    assert (await live.api.call("PUT", f"/api/admin/cases/{case['id']}", edited, token=admin)).body["case"][
        "version"] == 2

    rotated = await live.api.post("/api/fair/rotate", token=token)
    assert rotated.status == 200
    previous = rotated.body["previous"]
    assert previous["serverSeedHash"] == committed["serverSeedHash"]
    assert hashlib.sha256(previous["serverSeed"].encode()).hexdigest() == committed["serverSeedHash"]
    assert previous["nonce"] == 3 and previous["clientSeed"] == committed["clientSeed"]
    assert rotated.body["fair"]["nonce"] == 0 and rotated.body["fair"]["serverSeedHash"] != committed["serverSeedHash"]

    for opening in opened:
        query = (f"/api/fair/verify?serverSeed={previous['serverSeed']}&clientSeed={previous['clientSeed']}"
                 f"&nonce={opening['fair']['nonce']}&caseId={case['id']}&version=1")
        verified = await live.api.get(query)
        assert verified.status == 200, verified
        assert verified.body["item"]["name"] == opening["item"]["name"]
        weights = [i["weight"] for i in sample_case["items"]]
        f, ticket, _ = independent_draw(previous["serverSeed"], previous["clientSeed"],
                                        opening["fair"]["nonce"], weights)
        assert (verified.body["roll"], verified.body["ticket"]) == (f, ticket)


async def test_client_seed_change_reveals_and_restarts_nonce(live, sample_case):
    token, _ = await funded_user(live, "seedy", 0)
    before = (await live.api.get("/api/fair", token=token)).body["fair"]
    reply = await live.api.post("/api/fair/client-seed", {"clientSeed": "my own seed: 42!"}, token=token)
    assert reply.status == 200
    assert reply.body["previous"]["serverSeedHash"] == before["serverSeedHash"]
    assert reply.body["fair"]["clientSeed"] == "my own seed: 42!" and reply.body["fair"]["nonce"] == 0
    assert (await live.api.get("/api/fair", token=token)).body["fair"] == reply.body["fair"]
    for bad in ("", "x" * 65, "tab\there", "ünïcode", 42, None):
        refused = await live.api.post("/api/fair/client-seed", {"clientSeed": bad}, token=token)
        assert refused.status == 400 and refused.body["code"] == "validation_error", bad
    assert (await live.api.get("/api/fair", token=token)).body["fair"] == reply.body["fair"]


async def test_verify_rejects_bad_parameters(live, sample_case):
    case = await create_case(live, sample_case)
    good = {"serverSeed": SEED_A, "clientSeed": "c", "nonce": "0", "caseId": case["id"], "version": "1"}
    ok = await live.api.get("/api/fair/verify?" + "&".join(f"{k}={v}" for k, v in good.items()))
    assert ok.status == 200 and ok.body["success"] is True and 0 <= ok.body["roll"] < 1
    for key, value, status in (("serverSeed", "XYZ", 400), ("nonce", "-1", 400), ("version", "9", 404),
                               ("caseId", "nope", 404), ("nonce", "1e3", 400)):
        query = "&".join(f"{k}={value if k == key else v}" for k, v in good.items())
        reply = await live.api.get("/api/fair/verify?" + query)
        assert reply.status == status and reply.body["success"] is False, (key, value, reply)
    missing = await live.api.get("/api/fair/verify?serverSeed=" + SEED_A)
    assert missing.status == 400 and missing.body["details"] == [{"field": "clientSeed", "message": "Field required"}]


async def test_history_keeps_revealed_seeds_newest_first(live):
    token, _ = await funded_user(live, "historian", 0)
    revealed = [(await live.api.post("/api/fair/rotate", token=token)).body["previous"] for _ in range(3)]
    history = await live.api.get("/api/fair/history", token=token)
    assert history.status == 200
    seeds = history.body["seeds"]
    assert [s["serverSeed"] for s in seeds] == [r["serverSeed"] for r in reversed(revealed)]
    assert all(hashlib.sha256(s["serverSeed"].encode()).hexdigest() == s["serverSeedHash"] for s in seeds)
    current = (await live.api.get("/api/fair", token=token)).body["fair"]
    assert current["serverSeedHash"] not in {s["serverSeedHash"] for s in seeds}, "the seed in use stays secret"
