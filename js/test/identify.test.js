// Handshake authentication and `user:identify`, as the frontend uses them.

import assert from "node:assert/strict";
import { test } from "node:test";

import { connect, identify, register, socketFor } from "../lib/cyberhub.js";

test("user:identify with the socket's own id is acknowledged with {success: true}", async (t) => {
  const { token, user } = await register("ident");
  const { socket } = await connect(token);
  t.after(() => socket.disconnect());
  assert.deepEqual(await identify(socket, user.id), { success: true });
});

test("user:identify with another user's id is refused with the error envelope", async (t) => {
  const alice = await register("alice");
  const bob = await register("bob");
  const { socket } = await connect(bob.token);
  t.after(() => socket.disconnect());
  const ack = await identify(socket, alice.user.id);
  assert.equal(ack.success, false);
  assert.equal(typeof ack.error, "string");
  assert.ok(ack.error.length > 0);
  assert.equal(typeof ack.code, "string");
  assert.ok(socket.connected, "a refused identify does not drop the socket");
});

test("user:identify without a token is refused with the error envelope", async (t) => {
  const { user } = await register("anon");
  const { socket } = await connect(null);
  t.after(() => socket.disconnect());
  const ack = await identify(socket, user.id);
  assert.equal(ack.success, false);
  assert.equal(typeof ack.error, "string");
  assert.equal(typeof ack.code, "string");
});

for (const [label, badToken] of [
  ["garbage", "not-a-jwt"],
  ["forged", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4Iiwicm9sZSI6ImFkbWluIiwiZXhwIjo0MTAyNDQ0ODAwfQ.c2lnbmF0dXJl"],
]) {
  for (const transport of ["websocket", "polling"]) {
    test(`a ${label} token over ${transport} arrives as connect_error with a readable message`, async (t) => {
      const { socket } = socketFor(badToken, [transport]);
      t.after(() => socket.disconnect());
      const outcome = await new Promise((resolve) => {
        socket.once("connect", () => resolve({ connected: true }));
        socket.once("connect_error", (err) => resolve({ error: err }));
      });
      assert.ok(outcome.error, "the connection was refused");
      assert.match(outcome.error.message, /^Authentication error: \S/);
      assert.doesNotMatch(outcome.error.message, /Traceback|Exception|\bat \w+ \(/);
      assert.equal(socket.connected, false);
    });
  }
}
