// An upgrade, seen the way the frontend sees it: the player's inventory event
// and the public upgrade:new, on socket.io-client.

import assert from "node:assert/strict";
import { test } from "node:test";

import { ADMIN_TOKEN, api, connect, openCase, pay, register, uniqueName } from "../lib/cyberhub.js";

async function adminCase(price, items) {
  const reply = await api("POST", "/api/admin/cases", {
    token: ADMIN_TOKEN,
    body: { name: uniqueName("JS Upgrade"), price, items },
  });
  assert.equal(reply.status, 201, JSON.stringify(reply.body));
  return reply.body.case;
}

test("an upgrade pushes inventory:updated to the player and upgrade:new to everyone", async (t) => {
  const { token, user, username } = await register("upgrader");
  const player = await connect(token);
  const watcher = await connect(undefined, ["websocket", "polling"]);
  t.after(() => {
    player.socket.disconnect();
    watcher.socket.disconnect();
  });
  const fodder = await adminCase(100, [{ name: "JS Fodder", rarity: "common", price: 100, weight: 1 }]);
  const target = await adminCase(100, [
    { name: "JS Prize", rarity: "epic", price: 1000, weight: 1, image: "https://cdn.example/i/p.png" },
  ]);
  await pay(user.id, 200);
  const stake = [(await openCase(token, fodder.id)).item.id, (await openCase(token, fodder.id)).item.id];

  const seen = watcher.recorder.waitFor("upgrade:new", (d) => d?.username === username);
  const own = player.recorder.waitFor("upgrade:new", (d) => d?.username === username);
  const reply = await api("POST", "/api/upgrades", {
    token,
    body: { itemIds: stake, caseId: target.id, targetItemId: target.items[0].id },
  });
  assert.equal(reply.status, 200, JSON.stringify(reply.body));
  const upgrade = reply.body.upgrade;
  assert.equal(upgrade.chance, (200 * 0.9) / 1000);
  assert.equal(upgrade.won, upgrade.roll < upgrade.chance);
  assert.equal(upgrade.item === null, !upgrade.won);

  const expected = {
    username,
    won: upgrade.won,
    chance: upgrade.chance,
    stakeValue: 200,
    item: { name: "JS Prize", rarity: "epic", price: 1000, image: "https://cdn.example/i/p.png" },
  };
  assert.deepEqual(await seen, expected);
  assert.deepEqual(await own, expected);
  // Per socket, events keep their order: the player's inventory event came first.
  const names = player.recorder.names();
  assert.equal(names.filter((n) => n === `inventory:updated:${user.id}`).length, 3, JSON.stringify(names));
  assert.ok(names.lastIndexOf(`inventory:updated:${user.id}`) < names.lastIndexOf("upgrade:new"));
  assert.ok(!watcher.recorder.names().some((n) => n.startsWith("inventory:updated:")));
});
