"""Accounts and tokens through the real HTTP server."""

from __future__ import annotations

import time

import jwt

from tests.conftest import ADMIN_USERNAME, JWT_SECRET


async def test_register_login_profile(live):
    reply = await live.api.post("/api/auth/register", {"username": "Alice_1", "password": "correct horse"})
    assert reply.status == 201
    assert reply.body["success"] is True
    user = reply.body["user"]
    assert user["username"] == "Alice_1" and user["role"] == "user" and user["balance"] == 0
    assert set(user["fair"]) == {"serverSeedHash", "clientSeed", "nonce"}

    claims = jwt.decode(reply.body["token"], JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == user["id"] and claims["role"] == "user" and claims["exp"] > time.time()

    token = await live.api.login("Alice_1", "correct horse")
    profile = await live.api.get("/api/profile", token=token)
    assert profile.status == 200
    assert profile.body["user"] == {**user, "casesOpened": 0, "itemsOwned": 0}


async def test_password_is_stored_only_as_argon2_hash(live):
    await live.api.register("hash_check", "correct horse")
    doc = await live.db.users.find_one({"usernameLower": "hash_check"})
    assert doc["passwordHash"].startswith("$argon2id$")
    assert "correct horse" not in str(doc)


async def test_duplicate_username_is_409_case_insensitively(live):
    await live.api.register("Bob")
    reply = await live.api.post("/api/auth/register", {"username": "bOB", "password": "another pass"})
    assert reply.status == 409
    assert reply.body == {"success": False, "error": "Username is already taken", "code": "username_taken"}
    assert await live.db.users.count_documents({"usernameLower": "bob"}) == 1


async def test_wrong_password_and_unknown_user_are_401_alike(live):
    await live.api.register("carol")
    wrong = await live.api.post("/api/auth/login", {"username": "carol", "password": "wrong password"})
    unknown = await live.api.post("/api/auth/login", {"username": "nobody", "password": "wrong password"})
    assert wrong.status == unknown.status == 401
    assert wrong.body == unknown.body == {
        "success": False, "error": "Wrong username or password", "code": "invalid_credentials"}


async def test_username_and_password_rules(live):
    for username in ("ab", "a" * 33, "bad-name", "spa ce", "ünï"):
        reply = await live.api.post("/api/auth/register", {"username": username, "password": "long enough"})
        assert reply.status == 400 and reply.body["code"] == "validation_error", username
        assert reply.body["details"][0]["field"] == "username"
    for password in ("short", "x" * 129):
        reply = await live.api.post("/api/auth/register", {"username": "valid_name", "password": password})
        assert reply.status == 400 and reply.body["details"][0]["field"] == "password"
    ok = await live.api.post("/api/auth/register", {"username": "a" * 32, "password": "x" * 128})
    assert ok.status == 201
    assert await live.db.users.count_documents({}) == 2  # the configured admin + the valid one


async def test_tokens_expired_forged_malformed_missing_are_401(live):
    token, user = await live.api.register("dave")
    now = int(time.time())
    expired = jwt.encode({"sub": user["id"], "role": "user", "exp": now - 10}, JWT_SECRET, algorithm="HS256")
    wrong_key = "not-the-secret-but-as-long-as-a-real-one"
    forged = jwt.encode({"sub": user["id"], "role": "admin", "exp": now + 600}, wrong_key, algorithm="HS256")
    no_exp = jwt.encode({"sub": user["id"], "role": "user"}, JWT_SECRET, algorithm="HS256")
    none_alg = jwt.encode({"sub": user["id"], "role": "admin", "exp": now + 600}, None, algorithm="none")
    cases = {
        expired: "token_expired", forged: "invalid_token", no_exp: "invalid_token", none_alg: "invalid_token",
        "garbage": "invalid_token",
    }
    for bad, code in cases.items():
        reply = await live.api.get("/api/profile", token=bad)
        assert reply.status == 401 and reply.body["code"] == code and reply.body["success"] is False
    missing = await live.api.get("/api/profile")
    assert missing.status == 401 and missing.body["code"] == "missing_token"
    basic = await live.api.get("/api/profile", headers={"Authorization": f"Basic {token}"})
    assert basic.status == 401 and basic.body["code"] == "invalid_token"


async def test_user_on_admin_routes_is_403(live, sample_case):
    token, _ = await live.api.register("eve")
    for method, path in (("POST", "/api/admin/cases"), ("PUT", "/api/admin/cases/x"), ("DELETE", "/api/admin/cases/x")):
        reply = await live.api.call(method, path, sample_case if method != "DELETE" else None, token=token)
        assert reply.status == 403, (method, reply)
        assert reply.body == {"success": False, "error": "Admin role required", "code": "admin_required"}
    assert await live.db.cases.count_documents({}) == 0


async def test_configured_admin_exists_and_password_is_reset_on_restart(start_live):
    first = await start_live()
    token = await first.admin_token()
    profile = await first.api.get("/api/profile", token=token)
    assert profile.body["user"]["role"] == "admin" and profile.body["user"]["username"] == ADMIN_USERNAME
    same = await start_live()  # a restart with the same password keeps sessions
    assert (await same.api.get("/api/profile", token=token)).status == 200
    second = await start_live(admin_password="a-new-admin-password")
    revoked = await second.api.get("/api/profile", token=token)
    assert revoked.status == 401 and revoked.body["code"] == "token_revoked"
    new_token = await second.api.login(ADMIN_USERNAME, "a-new-admin-password")
    assert (await second.api.get("/api/profile", token=new_token)).status == 200
    old = await second.api.post("/api/auth/login", {"username": ADMIN_USERNAME, "password": "admin-password-1"})
    assert old.status == 401
    assert await second.db.users.count_documents({"role": "admin"}) == 1


async def test_a_restart_lifts_a_suspension_of_the_configured_admin(start_live):
    """The settings are the root of trust: another admin suspending the
    configured one cannot lock the operator out for good."""
    first = await start_live()
    token = await first.admin_token()
    admin = (await first.api.get("/api/profile", token=token)).body["user"]
    await first.db.users.update_one({"_id": admin["id"]},
                                    {"$set": {"suspended": {"reason": "rogue admin", "at": None, "by": "x"}}})
    assert (await first.api.get("/api/profile", token=token)).status == 403
    restarted = await start_live()
    assert (await restarted.api.get("/api/profile", token=token)).status == 200
    assert (await restarted.admin_token())


def test_a_verified_token_is_not_verified_again_until_it_expires(monkeypatch):
    """Tokens.decode keeps the claims of tokens whose signature it checked, so a
    player's next request skips PyJWT; the expiry is checked on every use, a
    token signed with another key never gets in, and the kept ones are bounded."""
    from cyberhub.accounts import security
    from cyberhub.platform.errors import Unauthorized

    real_time, real_decode = time.time, jwt.decode
    clock = [float(int(real_time()))]  # a whole second: the token expires at exactly clock + 60
    monkeypatch.setattr(security.time, "time", lambda: clock[0])
    tokens = security.Tokens(JWT_SECRET, ttl_seconds=60)
    token = tokens.issue("u1", "user", 2)
    verified = []

    def counted_decode(*args, **kwargs):
        verified.append(1)
        # PyJWT reads the real clock: its expiry check is shifted to the test's clock
        # (and its "issued in the future" check, which that shift would upset, is off).
        options = {**kwargs.pop("options", {}), "verify_iat": False}
        return real_decode(*args, leeway=real_time() - clock[0], options=options, **kwargs)

    monkeypatch.setattr(security.jwt, "decode", counted_decode)
    first = tokens.decode(token)
    assert tokens.decode(token) == first and first.version == 2 and len(verified) == 1
    other = security.Tokens("another-secret-of-the-same-length-" + "z" * 10, ttl_seconds=60)
    forged = other.issue("u1", "admin", 2)
    for _ in range(2):
        try:
            tokens.decode(forged)
            raise AssertionError("a token signed with another key was accepted")
        except Unauthorized as exc:
            assert exc.code == "invalid_token"
    clock[0] += 59.5
    assert tokens.decode(token) == first  # still valid: expires once exp <= now, as PyJWT says
    clock[0] += 0.5
    try:
        tokens.decode(token)
        raise AssertionError("an expired token was accepted from the cache")
    except Unauthorized as exc:
        assert exc.code == "token_expired"
    monkeypatch.setattr(security, "VERIFIED_TOKENS_KEPT", 3)
    many = [tokens.issue(f"u{i}", "user") for i in range(10)]
    for t in many:
        tokens.decode(t)
    assert len(tokens._verified) == 3


async def test_authentication_reads_the_user_without_its_operation_markers(live, sample_case):
    """The user a request is authenticated as carries no password hash and none
    of the wallet's markers (up to 500 ids each), which every request used to copy."""
    from cyberhub.accounts import users as accounts

    token, user = await live.api.register("marked")
    await live.api.pay(user["id"], 1000)
    stored = await live.db.users.find_one({"_id": user["id"]})
    assert stored["appliedOps"] and "passwordHash" in stored
    authenticated = await accounts.user_for_token(live.db, live.services.tokens, token)
    assert not {"passwordHash", "appliedOps", "abortedOps", "reversals"} & set(authenticated)
    assert authenticated["balance"] == 1000 and authenticated["fair"] == stored["fair"]
