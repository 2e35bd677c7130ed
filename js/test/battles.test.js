// A case battle watched the way the frontend watches it: an anonymous socket
// in the lobby and in the battle's room, rounds in order, then the result.

import assert from "node:assert/strict";
import { test } from "node:test";

import { api, connect, createCase, pay, register, WAIT_MS } from "../lib/cyberhub.js";

async function funded(prefix, amount) {
  const player = await register(prefix);
  await pay(player.user.id, amount);
  return player;
}

test("watching a battle: lobby update, every round in order, then battle:finished", async (t) => {
  const kase = await createCase({ price: 300 });
  const host = await funded("host", 1000);
  const guest = await funded("guest", 1000);
  const { socket, recorder } = await connect(undefined);
  t.after(() => socket.disconnect());

  const created = await api("POST", "/api/battles", {
    token: host.token,
    body: { caseIds: [kase.id, kase.id, kase.id], mode: "1v1" },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const battle = created.body.battle;
  const lobby = await recorder.waitFor("battles:updated", (d) => d?.battle?.id === battle.id);
  assert.equal(lobby.battle.status, "waiting");
  assert.equal(lobby.battle.rounds, undefined, "lobby summaries carry no rounds");

  const ack = await socket.timeout(WAIT_MS).emitWithAck("battle:watch", { battleId: battle.id });
  assert.equal(ack.success, true);
  assert.equal(ack.battle.id, battle.id);
  const missing = await socket.timeout(WAIT_MS).emitWithAck("battle:watch", { battleId: "nope" });
  assert.deepEqual(missing, { success: false, error: "Battle not found", code: "battle_not_found" });

  const finished = recorder.waitFor("battle:finished", (d) => d?.battleId === battle.id);
  const joined = await api("POST", `/api/battles/${battle.id}/join`, { token: guest.token, body: {} });
  assert.equal(joined.status, 200, JSON.stringify(joined.body));
  const result = await finished;

  const rounds = recorder.matching("battle:round", (d) => d?.battleId === battle.id).map((e) => e.data);
  assert.deepEqual(rounds.map((r) => r.round), [0, 1, 2], "every round once, in order, before the result");
  const final = (await api("GET", `/api/battles/${battle.id}`)).body.battle;
  assert.equal(final.status, "finished");
  assert.deepEqual(result, {
    battleId: battle.id,
    winners: final.winners,
    totals: final.totals,
    serverSeed: final.serverSeed,
    publicSeed: final.publicSeed,
  });
  const totals = [0, 0];
  for (const round of rounds) for (const r of round.results) totals[r.slot] += r.item.price;
  assert.deepEqual(totals, final.totals);

  const ok = await socket.timeout(WAIT_MS).emitWithAck("battle:unwatch", { battleId: battle.id });
  assert.deepEqual(ok, { success: true });
});
