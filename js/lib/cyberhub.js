// What the frontend does, in one place: REST calls with fetch, the signed
// payment webhook the provider sends, and socket.io-client connections whose
// every event is recorded and can be awaited by name.
//
// Environment (set by tests/test_js_client.py): BASE_URL, ADMIN_TOKEN, WEBHOOK_SECRET.

import { createHmac, randomBytes } from "node:crypto";
import { io } from "socket.io-client";

export const BASE_URL = required("BASE_URL");
export const ADMIN_TOKEN = required("ADMIN_TOKEN");
export const WEBHOOK_SECRET = required("WEBHOOK_SECRET");

// Upper bound for one awaited event or connection; a passing run never waits this long.
export const WAIT_MS = 10_000;

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} must be set (tests/test_js_client.py sets it)`);
  return value;
}

export function uniqueName(prefix) {
  return `${prefix}_${randomBytes(5).toString("hex")}`;
}

export async function api(method, path, { body, token, raw, headers = {} } = {}) {
  const hdrs = { ...headers };
  if (token) hdrs.Authorization = `Bearer ${token}`;
  let data = raw;
  if (data === undefined && body !== undefined) data = JSON.stringify(body);
  if (data !== undefined) hdrs["Content-Type"] = "application/json";
  const res = await fetch(BASE_URL + path, { method, headers: hdrs, body: data });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  return { status: res.status, body: json };
}

function expectStatus(reply, status, what) {
  if (reply.status !== status) {
    throw new Error(`${what}: expected HTTP ${status}, got ${reply.status} ${JSON.stringify(reply.body)}`);
  }
  return reply.body;
}

export async function register(prefix = "js") {
  const username = uniqueName(prefix);
  const body = expectStatus(
    await api("POST", "/api/auth/register", { body: { username, password: "correct horse battery" } }),
    201,
    "register",
  );
  return { token: body.token, user: body.user, username };
}

export async function createCase({ price = 500 } = {}) {
  const body = expectStatus(
    await api("POST", "/api/admin/cases", {
      token: ADMIN_TOKEN,
      body: {
        name: uniqueName("JS Case"),
        price,
        image: "https://cdn.example/cases/js.png",
        items: [
          { name: "JS Sticker", rarity: "common", price: 100, weight: 3, image: "https://cdn.example/i/s.png" },
          { name: "JS Knife", rarity: "rare", price: 900, weight: 1, image: "https://cdn.example/i/k.png" },
        ],
      },
    }),
    201,
    "create case",
  );
  return body.case;
}

// The payment provider's webhook: X-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>.
export async function pay(userId, amount) {
  const raw = JSON.stringify({
    paymentId: uniqueName("pay"),
    userId,
    amount,
    currency: "USD",
    status: "succeeded",
  });
  const t = Math.floor(Date.now() / 1000);
  const v1 = createHmac("sha256", WEBHOOK_SECRET).update(`${t}.${raw}`).digest("hex");
  return expectStatus(
    await api("POST", "/api/payment/callback", { raw, headers: { "X-Signature": `t=${t},v1=${v1}` } }),
    200,
    "payment webhook",
  );
}

export async function openCase(token, caseId) {
  return expectStatus(await api("POST", "/api/cases/open", { token, body: { caseId } }), 200, "open case");
}

// Every event one socket receives, in arrival order, awaitable by name.
export class Recorder {
  constructor(socket) {
    this.events = [];
    this.waiters = [];
    socket.onAny((name, ...args) => {
      this.events.push({ name, data: args[0] });
      this.waiters = this.waiters.filter((w) => !w.check());
    });
  }

  names() {
    return this.events.map((e) => e.name);
  }

  matching(name, predicate = () => true) {
    return this.events.filter((e) => e.name === name && predicate(e.data));
  }

  // Resolves with the data of the first matching event (already received or yet to come).
  waitFor(name, predicate = () => true) {
    return new Promise((resolve, reject) => {
      const waiter = {
        check: () => {
          const hit = this.matching(name, predicate)[0];
          if (!hit) return false;
          clearTimeout(waiter.timer);
          resolve(hit.data);
          return true;
        },
      };
      if (waiter.check()) return;
      waiter.timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no "${name}" event within ${WAIT_MS} ms; received: ${JSON.stringify(this.names())}`));
      }, WAIT_MS);
      this.waiters.push(waiter);
    });
  }
}

// io(BASE_URL, {auth: {token}, transports}) exactly as the frontend calls it;
// `transports: null` leaves the option out: the client's default (polling, then the upgrade).
export function socketFor(token, transports = ["websocket"]) {
  const socket = io(BASE_URL, {
    auth: token ? { token } : undefined,
    ...(transports ? { transports } : {}),
    reconnection: false,
    forceNew: true,
    timeout: WAIT_MS,
  });
  const recorder = new Recorder(socket);
  return { socket, recorder };
}

export function connected(socket) {
  return new Promise((resolve, reject) => {
    if (socket.connected) return resolve();
    socket.once("connect", resolve);
    socket.once("connect_error", reject);
  });
}

export async function connect(token, transports = ["websocket"]) {
  const conn = socketFor(token, transports);
  await connected(conn.socket);
  return conn;
}

export function identify(socket, userId) {
  return socket.timeout(WAIT_MS).emitWithAck("user:identify", { userId });
}
