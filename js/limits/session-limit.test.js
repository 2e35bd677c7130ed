// SOCKET_MAX_PER_ADDRESS as socket.io-client sees it. Run by
// tests/test_js_client.py against a server whose limit is 2 sessions per
// address (this file is not in test/: the main suite's server has no such limit).
// A refused handshake is a `connect_error` (polling: the HTTP status, 429, in
// `description`); with reconnection on, the client retries with its back-off
// and gets in once a session from its address has ended.

import assert from "node:assert/strict";
import { test } from "node:test";
import { io } from "socket.io-client";

import { BASE_URL, connect, WAIT_MS } from "../lib/cyberhub.js";

function firstError(socket) {
  return new Promise((resolve) => socket.once("connect_error", resolve));
}

test("past the per-address limit a new socket gets connect_error, then gets in when one leaves", async (t) => {
  const first = await connect(null, ["websocket"]);
  const second = await connect(null, ["polling"]);
  t.after(() => {
    first.socket.disconnect();
    second.socket.disconnect();
  });

  // polling: the refusal is an HTTP 429 the client reports as such
  const polling = io(BASE_URL, { transports: ["polling"], reconnection: false, forceNew: true, timeout: WAIT_MS });
  const pollingError = await firstError(polling);
  assert.equal(pollingError.message, "xhr poll error");
  assert.equal(pollingError.description, 429);
  polling.close();

  // websocket, with socket.io-client's reconnection: refused, retried, admitted
  const retrying = io(BASE_URL, {
    transports: ["websocket"], forceNew: true, timeout: WAIT_MS,
    reconnectionDelay: 50, reconnectionDelayMax: 200, randomizationFactor: 0,
  });
  t.after(() => retrying.disconnect());
  const refused = await firstError(retrying);
  assert.equal(refused.message, "websocket error");
  assert.ok(!retrying.connected);
  const admitted = new Promise((resolve) => retrying.once("connect", resolve));
  first.socket.disconnect(); // a session from this address ends
  await admitted;
  assert.ok(retrying.connected);
});
