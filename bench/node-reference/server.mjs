// The baseline the Socket.IO benchmarks compare against: a Node Express +
// socket.io 4 server (the stack the project's seeds describe) doing the same
// realtime job as CyberHub, in memory. Written for bench/ only, not a product.
//
//   node bench/node-reference/server.mjs PORT
//
// - sockets: `auth: {token}` joins room `user:<token>` (the token *is* the user id
//   here; no JWT, no database — the baseline is the realtime path);
// - POST /api/cases/open {caseId}: debits the user's (unbounded) balance, draws an
//   item by weight, emits `balance:updated:<id>` and `inventory:updated:<id>` to
//   the user's room and `drop:new` {username, item, caseId, caseName} to everyone,
//   then answers like CyberHub — the same order as CyberHub's handler;
// - POST /api/admin/cases: stores a case, emits `cases:updated` to everyone, 201;
// - GET /health: {status, clients}; GET /metrics: the event-loop lag histogram, as CyberHub's.
// - `chat:send` {text} with ack: CyberHub's rules and payloads (login, trimmed text
//   1–300 characters without control characters, the same link rule, per-user
//   limit CHAT_PER_USER_PER_MINUTE and site-wide CHAT_MAX_PER_SECOND from the
//   environment, 0 = off), a history of 1000, `chat:message` to everyone, then the ack.
// Listens on 127.0.0.1 only.

import http from "node:http";
import crypto from "node:crypto";
import express from "express";
import { Server } from "socket.io";

const port = Number(process.argv[2] || 3100);
const app = express();
app.use(express.json({ limit: "64kb" }));
const server = http.createServer(app);
const io = new Server(server, { cors: { origin: "*" }, pingInterval: 25000, pingTimeout: 20000 });

const cases = new Map();
const balances = new Map();
const rarities = ["common", "uncommon", "rare", "epic", "legendary"];
function addCase(body) {
  const id = crypto.randomBytes(12).toString("hex");
  const items = (body.items || []).map((it, i) => ({ id: `${id}-${i}`, ...it }));
  cases.set(id, { id, name: body.name, price: body.price, items });
  return cases.get(id);
}
addCase({ name: "Reference case", price: 100,
  items: Array.from({ length: 5 }, (_, i) => ({ name: `item ${i}`, rarity: rarities[i], price: 10 + 37 * i,
    weight: Math.max(1, Math.floor(1000 / (i + 1))), image: null })) });

function userOf(req) {
  const auth = req.get("authorization") || "";
  return auth.startsWith("Bearer ") ? auth.slice(7) : null;
}

const CHAT_LINK = new RegExp("[a-z][a-z0-9+.-]*://|(?<![a-z0-9])www\\.|(?<![a-z0-9-])[a-z0-9-]+(?:\\.[a-z0-9-]+)*\\.(?:"
  + "com|net|org|io|gg|ru|xyz|info|biz|me|co|tv|uk|de|fr|cc|su|top|site|online|shop|store|app|dev|link|ly|ws|live|"
  + "pro|club|vip|cn|pw|tk|ml|ga|cf|gq|win|bet|casino|fun|ua|pl|eu)(?![a-z0-9])", "i");
const CONTROL = /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;
const chat = { seq: 0, history: [], sent: [], perUser: new Map(),
  perMinute: Number(process.env.CHAT_PER_USER_PER_MINUTE || 0), perSecond: Number(process.env.CHAT_MAX_PER_SECOND || 0) };
const refuse = (ack, code, extra = {}) => ack?.({ success: false, error: code, code, ...extra });
function overLimit(times, limit, windowMs, t) {
  while (times.length && times[0] <= t - windowMs) times.shift();
  return limit > 0 && times.length >= limit;
}

io.on("connection", (socket) => {
  const token = socket.handshake.auth && socket.handshake.auth.token;
  if (token) socket.join(`user:${token}`);
  socket.on("chat:send", (data, ack) => {
    if (!token) return refuse(ack, "login_required");
    const text = typeof data?.text === "string" ? data.text.trim() : null;
    if (!text || [...text].length > 300 || CONTROL.test(text)) return refuse(ack, "validation_error");
    if (CHAT_LINK.test(text)) return refuse(ack, "chat_link_refused");
    const t = Date.now();
    const mine = chat.perUser.get(token) || [];
    chat.perUser.set(token, mine);
    if (overLimit(mine, chat.perMinute, 60000, t)) return refuse(ack, "rate_limited");
    if (overLimit(chat.sent, chat.perSecond, 1000, t)) return refuse(ack, "chat_slow_mode", { retryAfterMs: chat.sent[0] + 1000 - t });
    mine.push(t);
    chat.sent.push(t);
    const message = { id: String(++chat.seq), userId: token, username: token, text, createdAt: new Date(t).toISOString() };
    chat.history.push(message);
    if (chat.history.length > 1000) chat.history.shift();
    io.emit("chat:message", message);
    ack?.({ success: true, message });
  });
});

// Event-loop lag measured as CyberHub measures it (how late a 10 ms timer runs), exported under
// CyberHub's metric name and buckets so that bench/socket_bench.py reads both servers alike.
const LAG_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
const lag = { buckets: LAG_BUCKETS.map(() => 0), count: 0, sum: 0 };
function probeLag() {
  const due = performance.now() + 10;
  setTimeout(() => {
    const seconds = Math.max(0, performance.now() - due) / 1000;
    lag.count++;
    lag.sum += seconds;
    LAG_BUCKETS.forEach((le, i) => { if (seconds <= le) lag.buckets[i]++; });
    probeLag();
  }, 10);
}
probeLag();
app.get("/metrics", (req, res) => {
  const name = "cyberhub_event_loop_lag_seconds";
  const lines = LAG_BUCKETS.map((le, i) => `${name}_bucket{le="${le.toFixed(le < 0.01 ? 4 : le < 1 ? 2 : 1).replace(/0+$/, "").replace(/\.$/, ".0")}"} ${lag.buckets[i]}`);
  lines.push(`${name}_bucket{le="+Inf"} ${lag.count}`, `${name}_count ${lag.count}`, `${name}_sum ${lag.sum}`);
  res.type("text/plain").send(lines.join("\n") + "\n");
});

app.get("/health", (req, res) => res.json({ status: "ok", clients: io.engine.clientsCount }));
app.get("/api/cases", (req, res) => res.json({ success: true, cases: [...cases.values()] }));

app.post("/api/admin/cases", (req, res) => {
  const c = addCase(req.body || {});
  io.emit("cases:updated");
  res.status(201).json({ success: true, case: c });
});

app.post("/api/cases/open", (req, res) => {
  const user = userOf(req);
  if (!user) return res.status(401).json({ success: false, error: "no token" });
  const c = cases.get((req.body || {}).caseId) || cases.values().next().value;
  const total = c.items.reduce((s, it) => s + it.weight, 0);
  let ticket = crypto.randomInt(total);
  const item = c.items.find((it) => (ticket -= it.weight) < 0);
  const balance = (balances.get(user) ?? 1e12) - c.price + 0;
  balances.set(user, balance);
  io.to(`user:${user}`).emit(`balance:updated:${user}`, { balance });
  io.to(`user:${user}`).emit(`inventory:updated:${user}`);
  io.emit("drop:new", { username: user, item: { name: item.name, rarity: item.rarity, price: item.price,
    image: item.image ?? null }, caseId: c.id, caseName: c.name });
  res.json({ success: true, item: { ...item, caseId: c.id, status: "owned" }, balance });
});

server.listen(port, "127.0.0.1", () => console.log(`listening ${port}`));
process.on("SIGTERM", () => { io.close(); server.close(() => process.exit(0)); setTimeout(() => process.exit(0), 2000); });
