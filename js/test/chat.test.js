// The chat as the frontend uses it: chat:send with an acknowledgement, the
// chat:message broadcast, the history over REST, and an admin's removal.

import assert from "node:assert/strict";
import { test } from "node:test";

import { ADMIN_TOKEN, WAIT_MS, api, connect, register } from "../lib/cyberhub.js";

function say(socket, text) {
  return socket.timeout(WAIT_MS).emitWithAck("chat:send", { text });
}

test("chat:send is acked with the stored message, which every socket receives as chat:message", async (t) => {
  const { token, user, username } = await register("chatter");
  const sender = await connect(token);
  const viewer = await connect(null, ["polling", "websocket"]);
  t.after(() => {
    sender.socket.disconnect();
    viewer.socket.disconnect();
  });
  const text = `<i>hi</i> from ${username}`;
  const seen = viewer.recorder.waitFor("chat:message", (m) => m?.text === text);
  const ack = await say(sender.socket, `   ${text}\n`);
  assert.equal(ack.success, true);
  assert.deepEqual(Object.keys(ack.message).sort(), ["createdAt", "id", "text", "userId", "username"]);
  assert.equal(ack.message.text, text, "trimmed, never HTML-escaped");
  assert.equal(ack.message.userId, user.id);
  assert.equal(ack.message.username, username);
  assert.ok(!Number.isNaN(Date.parse(ack.message.createdAt)));
  assert.deepEqual(await seen, ack.message);

  const history = await api("GET", "/api/chat/messages?limit=100");
  assert.equal(history.status, 200);
  assert.deepEqual(history.body.messages.at(-1), ack.message, "the newest message is last");
});

test("refusals are the error envelope with a code", async (t) => {
  const { token } = await register("refused");
  const { socket } = await connect(token);
  const anon = await connect(null);
  t.after(() => {
    socket.disconnect();
    anon.socket.disconnect();
  });
  for (const [text, code] of [
    ["", "validation_error"],
    ["x".repeat(301), "validation_error"],
    ["bell\u0007", "validation_error"],
    ["come to https://skins.example", "chat_link_refused"],
    ["www.skins", "chat_link_refused"],
    ["discord.gg/x", "chat_link_refused"],
  ]) {
    const ack = await say(socket, text);
    assert.equal(ack.success, false, text);
    assert.equal(ack.code, code, text);
    assert.equal(typeof ack.error, "string");
  }
  const ack = await say(anon.socket, "hello");
  assert.equal(ack.success, false);
  assert.equal(ack.code, "login_required");
});

test("an admin's removal reaches every socket as chat:removed and leaves the history", async (t) => {
  const { token } = await register("removed");
  const { socket, recorder } = await connect(token);
  t.after(() => socket.disconnect());
  const ack = await say(socket, "soon gone");
  assert.equal(ack.success, true);
  const removedEvent = recorder.waitFor("chat:removed", (d) => d?.id === ack.message.id);
  const reply = await api("DELETE", `/api/admin/chat/messages/${ack.message.id}`, { token: ADMIN_TOKEN });
  assert.equal(reply.status, 200);
  assert.deepEqual(reply.body, { success: true });
  assert.deepEqual(await removedEvent, { id: ack.message.id });
  const history = await api("GET", "/api/chat/messages?limit=100");
  assert.ok(!history.body.messages.some((m) => m.id === ack.message.id));
});
