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
