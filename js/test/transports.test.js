// The ways the frontend's socket can be carried: websocket only, websocket with a
// polling fallback, polling only, and polling upgraded to websocket (socket.io-client's
// default). Over each, the socket must receive
// the public `cases:updated` and its own user's `balance:updated:<id>`.

import assert from "node:assert/strict";
import { test } from "node:test";

import { connect, connected, createCase, pay, register, socketFor } from "../lib/cyberhub.js";

async function receivesPublicAndOwnEvents(socket, recorder, user) {
  const casesUpdated = recorder.waitFor("cases:updated");
  await createCase();
  assert.equal(await casesUpdated, undefined, "cases:updated carries no data");

  const balanceUpdated = recorder.waitFor(`balance:updated:${user.id}`);
  await pay(user.id, 1234);
  assert.deepEqual(await balanceUpdated, { balance: 1234 });
}

for (const transport of ["websocket", "polling"]) {
  test(`a ${transport}-only socket with a token receives public and own events`, async (t) => {
    const { token, user } = await register(transport.slice(0, 4));
    const { socket, recorder } = await connect(token, [transport]);
    t.after(() => socket.disconnect());
    assert.equal(socket.io.engine.transport.name, transport);
    await receivesPublicAndOwnEvents(socket, recorder, user);
    assert.equal(socket.io.engine.transport.name, transport, "the transport did not change");
  });
}

test("a socket that starts on polling upgrades to websocket and keeps receiving", async (t) => {
  const { token, user } = await register("upgr");
  const { socket, recorder } = socketFor(token, ["polling", "websocket"]);
  t.after(() => socket.disconnect());
  const engine = socket.io.engine; // created synchronously by io(); it opens asynchronously
  let firstTransport = null;
  socket.io.once("open", () => {
    firstTransport = engine.transport.name;
  });
  const upgraded = new Promise((resolve) => engine.once("upgrade", (transport) => resolve(transport.name)));

  await connected(socket);
  assert.equal(firstTransport, "polling", "the connection opened over polling");
  assert.equal(await upgraded, "websocket");
  assert.equal(socket.io.engine.transport.name, "websocket");
  assert.ok(socket.connected);
  await receivesPublicAndOwnEvents(socket, recorder, user);
});

test("with websocket first and polling as fallback (the setting for a large audience) it opens on websocket", async (t) => {
  const { token, user } = await register("wsfb");
  const { socket, recorder } = socketFor(token, ["websocket", "polling"]);
  t.after(() => socket.disconnect());
  const engine = socket.io.engine;
  let firstTransport = null;
  let upgrades = 0;
  socket.io.once("open", () => {
    firstTransport = engine.transport.name;
  });
  engine.on("upgrade", () => upgrades++);
  await connected(socket);
  assert.equal(firstTransport, "websocket", "no polling phase");
  await receivesPublicAndOwnEvents(socket, recorder, user);
  assert.equal(engine.transport.name, "websocket");
  assert.equal(upgrades, 0, "nothing to upgrade from");
});

test("the default io(url) gets every event once, in order, while it polls, upgrades and after", async (t) => {
  const { token, user } = await register("dflt");
  const unit = 7;
  let paid = 0;
  let stopAt = Infinity;
  // Payments one after the other, from before the connection until after the upgrade:
  // each emits balance:updated with the next balance.
  const paying = (async () => {
    while (paid < stopAt) {
      await pay(user.id, unit);
      paid += 1;
    }
  })();
  const { socket, recorder } = socketFor(token, null); // no transports option, as the frontend
  t.after(() => socket.disconnect());
  const engine = socket.io.engine;
  let firstTransport = null;
  socket.io.once("open", () => {
    firstTransport = engine.transport.name;
  });
  const upgraded = new Promise((resolve) => engine.once("upgrade", (transport) => resolve(transport.name)));
  await connected(socket);
  assert.equal(firstTransport, "polling");
  assert.equal(await upgraded, "websocket");
  stopAt = paid + 5; // a few more over the websocket
  await paying;
  const event = `balance:updated:${user.id}`;
  await recorder.waitFor(event, (d) => d.balance === paid * unit);
  const balances = recorder.matching(event).map((e) => e.data.balance);
  // a contiguous run of balances (the ones after the socket joined its room), each once, in order
  const first = balances[0] / unit;
  assert.deepEqual(balances, Array.from({ length: paid - first + 1 }, (_, i) => (first + i) * unit));
  assert.ok(balances.length >= 5);
  assert.equal(engine.transport.name, "websocket");
});
