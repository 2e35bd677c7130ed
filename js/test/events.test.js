// A case opening, seen by the player's socket the way the frontend sees it.

import assert from "node:assert/strict";
import { test } from "node:test";

import { connect, createCase, openCase, pay, register } from "../lib/cyberhub.js";

test("opening a case pushes balance, inventory and a public drop:new", async (t) => {
  const { token, user, username } = await register("opener");
  const { socket, recorder } = await connect(token);
  t.after(() => socket.disconnect());
  const kase = await createCase({ price: 500 });

  const topUp = recorder.waitFor(`balance:updated:${user.id}`);
  await pay(user.id, 700);
  assert.deepEqual(await topUp, { balance: 700 });

  const afterOpen = recorder.waitFor(`balance:updated:${user.id}`, (d) => d?.balance === 200);
  const inventory = recorder.waitFor(`inventory:updated:${user.id}`);
  const drop = recorder.waitFor("drop:new", (d) => d?.username === username);
  const reply = await openCase(token, kase.id);
  assert.equal(reply.balance, 200);

  assert.deepEqual(await afterOpen, { balance: 200 });
  assert.equal(await inventory, undefined, "inventory:updated carries no data");
  const dropped = await drop;
  assert.deepEqual(dropped, {
    username,
    item: {
      name: reply.item.name,
      rarity: reply.item.rarity,
      price: reply.item.price,
      image: reply.item.image,
    },
    caseId: kase.id,
    caseName: kase.name,
  });
  assert.ok(kase.items.some((i) => i.name === dropped.item.name), "the drop is one of the case's items");
});
