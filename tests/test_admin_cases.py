"""The back office's catalogue: every case with `active`, restore, the version
archive with the admin who made each version, and the audit trail of it all."""

from __future__ import annotations

from tests.support.client import connect_socket
from tests.test_economy import create_case


async def test_list_restore_versions_and_audit(live, sample_case):
    token = await live.admin_token()
    me = (await live.api.get("/api/profile", token=token)).body["user"]["id"]
    case = await create_case(live, sample_case)
    kept = await create_case(live, {**sample_case, "name": "Kept"})
    edited = await live.api.call("PUT", f"/api/admin/cases/{case['id']}", {**sample_case, "price": 650}, token=token)
    assert edited.status == 200 and edited.body["case"]["version"] == 2
    assert (await live.api.call("DELETE", f"/api/admin/cases/{case['id']}", token=token)).status == 200

    listed = await live.api.get("/api/admin/cases", token=token)
    assert listed.status == 200, listed
    by_id = {c["id"]: c for c in listed.body["cases"]}
    assert by_id[case["id"]]["active"] is False and by_id[case["id"]]["deletedAt"]
    assert by_id[kept["id"]]["active"] is True and by_id[case["id"]]["price"] == 650
    public = (await live.api.get("/api/cases")).body["cases"]
    assert [c["id"] for c in public] == [kept["id"]]

    client, rec = await connect_socket(live.base_url)
    try:
        restored = await live.api.post(f"/api/admin/cases/{case['id']}/restore", token=token)
        assert restored.status == 200 and restored.body["case"]["active"] is True, restored
        await rec.wait_for("cases:updated")
    finally:
        await client.disconnect()
    public = (await live.api.get("/api/cases")).body["cases"]
    assert {c["id"] for c in public} == {case["id"], kept["id"]}
    again = await live.api.post(f"/api/admin/cases/{case['id']}/restore", token=token)
    assert again.status == 409 and again.body["code"] == "case_not_deleted"
    assert (await live.api.post("/api/admin/cases/nope/restore", token=token)).status == 404

    versions = await live.api.get(f"/api/admin/cases/{case['id']}/versions", token=token)
    assert versions.status == 200, versions
    assert [(v["version"], v["price"], v["adminId"]) for v in versions.body["versions"]] == [
        (1, 500, me), (2, 650, me)]
    assert versions.body["versions"][0]["items"][0]["name"] == "Common Knife"
    assert (await live.api.get("/api/admin/cases/nope/versions", token=token)).status == 404

    audit = (await live.api.get("/api/admin/audit?limit=3", token=token)).body
    assert [(e["action"], e["target"]) for e in audit["entries"]] == [
        ("case.restore", case["id"]), ("case.delete", case["id"]), ("case.update", case["id"])]
    assert all(e["adminId"] == me for e in audit["entries"])
    rest = (await live.api.get(f"/api/admin/audit?limit=3&cursor={audit['nextCursor']}", token=token)).body
    assert [e["action"] for e in rest["entries"]] == ["case.create", "case.create"]
    assert rest["nextCursor"] is None
    assert (await live.api.get("/api/admin/audit?cursor=bad", token=token)).status == 400
