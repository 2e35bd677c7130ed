"""A battle as the public sees it: rounds only as far as revealed, totals of
those rounds, winners and the server seed only once finished."""

from __future__ import annotations

from cyberhub.games.battles import draws
from cyberhub.games.battles.models import BattlePublic
from cyberhub.platform.ids import as_utc

SEAT_FIELDS = ("slot", "team", "userId", "username", "bot", "clientSeed")
ITEM_FIELDS = ("name", "rarity", "price", "weight", "image")


def public_battle(doc: dict, *, rounds: bool = True) -> dict:
    finished = doc["status"] == "finished"
    shown = doc.get("draws", [])[: doc.get("revealed", 0)]
    totals = draws.slot_totals(shown, doc["size"]) if shown else [0] * doc["size"]
    data = {
        "id": doc["_id"], "status": doc["status"], "mode": doc["mode"], "crazy": doc["crazy"],
        "cases": [{"caseId": v["caseId"], "caseVersion": v["version"], "name": v["name"], "price": v["price"],
                   "image": v.get("image"),
                   **({"items": [{k: i.get(k) for k in ITEM_FIELDS} for i in v["items"]]} if rounds else {})}
                  for v in doc["cases"]],
        "entryCost": doc["entryCost"],
        "slots": [{k: s[k] for k in SEAT_FIELDS} if s is not None else None for s in doc["slots"]],
        "createdBy": doc["createdBy"], "createdAt": as_utc(doc["createdAt"]),
        "startedAt": as_utc(doc.get("startedAt")), "finishedAt": as_utc(doc.get("finishedAt")),
        "serverSeedHash": doc["serverSeedHash"], "publicSeed": doc.get("publicSeed"),
        "serverSeed": doc["serverSeed"] if finished else None,
        "totals": totals, "winners": doc.get("winners", []) if finished else [],
    }
    if rounds:
        data["rounds"] = [round_payload(doc, r) for r in range(len(shown))]
    out = BattlePublic.model_validate(data).model_dump(mode="json", by_alias=True)
    if not rounds:  # a lobby summary
        del out["rounds"]
        for case in out["cases"]:
            del case["items"]
    return out


def round_payload(doc: dict, r: int) -> dict:
    finished = doc["status"] == "finished"
    results = []
    for result in doc["draws"][r]:
        owner = result.get("owner")
        item_id = draws.item_id(doc["_id"], r, result["slot"]) if finished and owner is not None else None
        results.append({"slot": result["slot"], "item": {**{k: result["item"].get(k) for k in
                                                            ("name", "rarity", "price", "image")},
                                                         "itemId": item_id}})
    return {"round": r, "results": results}
