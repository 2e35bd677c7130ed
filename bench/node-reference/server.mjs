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
// - GET /health: {status, clients}.
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

io.on("connection", (socket) => {
  const token = socket.handshake.auth && socket.handshake.auth.token;
  if (token) socket.join(`user:${token}`);
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
