// User B never receives user A's private events — neither through the
// handshake nor after trying to identify as A. Absence is proven with an
// ordering barrier: events to one socket arrive in the order they were
// emitted, so once B has received an event emitted after all of A's, any of
// A's events that reached B would already be in B's record.

import assert from "node:assert/strict";
import { test } from "node:test";

import { connect, createCase, identify, openCase, pay, register } from "../lib/cyberhub.js";

test("user B and an anonymous socket never receive user A's events", async (t) => {
  const a = await register("iso_a");
  const b = await register("iso_b");
  const sockA = await connect(a.token);
  const sockB = await connect(b.token, ["polling", "websocket"]);
  const anon = await connect(null);
  t.after(() => [sockA, sockB, anon].forEach(({ socket }) => socket.disconnect()));

  const refused = await identify(sockB.socket, a.user.id);
  assert.equal(refused.success, false);

  const kase = await createCase({ price: 300 });
  const aPaid = sockA.recorder.waitFor(`balance:updated:${a.user.id}`, (d) => d?.balance === 300);
  await pay(a.user.id, 300);
  await aPaid;
  const aOpened = Promise.all([
    sockA.recorder.waitFor(`balance:updated:${a.user.id}`, (d) => d?.balance === 0),
    sockA.recorder.waitFor(`inventory:updated:${a.user.id}`),
  ]);
  await openCase(a.token, kase.id);
  await aOpened;

  // Barriers: B's own events, caused after every one of A's had reached A.
  const bPaid = sockB.recorder.waitFor(`balance:updated:${b.user.id}`);
  await pay(b.user.id, 300);
  assert.deepEqual(await bPaid, { balance: 300 });
  const bDrop = (d) => d?.username === b.username;
  const bDropSeen = Promise.all([sockB.recorder.waitFor("drop:new", bDrop), anon.recorder.waitFor("drop:new", bDrop)]);
  await openCase(b.token, kase.id);
  await bDropSeen;
  // The public drop of A's opening reached both (it names A, but it is public).
  const aDrop = (d) => d?.username === a.username;
  assert.equal(anon.recorder.matching("drop:new", aDrop).length, 1);
  assert.equal(sockB.recorder.matching("drop:new", aDrop).length, 1);

  const leaked = (names) => names.filter((n) => n.endsWith(`:${a.user.id}`));
  assert.deepEqual(leaked(sockB.recorder.names()), []);
  assert.deepEqual(leaked(anon.recorder.names()), []);
  assert.deepEqual(
    anon.recorder.names().filter((n) => n.startsWith("balance:") || n.startsWith("inventory:")),
    [],
  );
});
