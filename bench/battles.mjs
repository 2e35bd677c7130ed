// Case battle load generator on the official client (socket.io-client 4.8.4).
//
//   node bench/battles.mjs plan.json   → one JSON result on stdout (progress on stderr)
//
// plan = {
//   base: "http://127.0.0.1:PORT",
//   battles: 100,            // concurrent 2v2 battles, four players each
//   watchers: 20,            // anonymous sockets per battle in its room (battle:watch)
//   lobby: 1000,             // anonymous sockets that only get the lobby's battles:updated
//   rounds: 5, caseId: "...", roundSeconds: 1,
//   players: [token, ...],   // 4 × battles funded players: battle i uses 4i .. 4i+3
//   connectConcurrency: 200, joinConcurrency: 50, timeoutMs: 120000
// }
//
// Every battle is created, then its watchers connect and watch, then the
// three other players join it at once (the last join starts it). Join
// latency: each join's round trip. Round lag: when a watcher got round r −
// (the battle's startedAt + (r + 1) × roundSeconds), i.e. how late the round
// reached the watcher against the server's schedule (server and generator
// share this machine's clock).
// Lost: a watcher that never got a round; out of order: a round after a
// later one, or twice. Only 127.0.0.1 is contacted.

import fs from "node:fs";
import { io } from "socket.io-client";

import { agent, log, now, pct, request as requestText, transportsOf } from "./common.mjs";

// {status, body: parsed JSON (or the text)}
async function request(base, method, path, token, body) {
  const res = await requestText(base, method, path, token, body);
  let json = res.body;
  try { json = JSON.parse(res.body); } catch { /* not JSON: keep the text */ }
  return { status: res.status, body: json };
}

let transportsOption = { transports: ["websocket"] }; // transportsOf(plan), set in main()

function connect(base) {
  const socket = io(base, { ...transportsOption, reconnection: false, forceNew: true, timeout: 30000 });
  return new Promise((resolve) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (e) => { log("connect_error", e.message); socket.close(); resolve(null); });
  });
}

async function pool(count, concurrency, job) {
  const out = new Array(count);
  let next = 0;
  async function worker() {
    while (next < count) {
      const i = next++;
      out[i] = await job(i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return out;
}

async function main() {
  const plan = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  transportsOption = transportsOf(plan);
  const cc = plan.connectConcurrency || 200;
  const B = plan.battles;

  log(`lobby: connecting ${plan.lobby} sockets`);
  let lobbyEvents = 0;
  const lobby = (await pool(plan.lobby, cc, () => connect(plan.base))).filter(Boolean);
  for (const s of lobby) s.on("battles:updated", () => { lobbyEvents++; });

  log(`creating ${B} battles`);
  const createMs = [];
  const ids = await pool(B, plan.joinConcurrency || 50, async (b) => {
    const t0 = now();
    const r = await request(plan.base, "POST", "/api/battles", plan.players[4 * b],
      { caseIds: Array(plan.rounds).fill(plan.caseId), mode: "2v2" });
    createMs.push(now() - t0);
    if (r.status !== 201) throw new Error(`create: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.battle.id;
  });

  log(`connecting ${B} × ${plan.watchers} watchers`);
  const rounds = new Map(); // battleId -> list of per-watcher {got: [[round, t]], finished}
  const watchers = (await pool(B * plan.watchers, cc, async (i) => {
    const id = ids[Math.floor(i / plan.watchers)];
    const s = await connect(plan.base);
    if (!s) return null;
    const rec = { battleId: id, got: [], finished: null };
    s.on("battle:round", (d) => { if (d.battleId === id) rec.got.push([d.round, now()]); });
    s.on("battle:finished", (d) => { if (d.battleId === id) rec.finished = now(); });
    const ack = await s.timeout(30000).emitWithAck("battle:watch", { battleId: id });
    if (!ack.success) throw new Error(`watch: ${JSON.stringify(ack)}`);
    if (!rounds.has(id)) rounds.set(id, []);
    rounds.get(id).push(rec);
    return s;
  })).filter(Boolean);

  log("joining: 3 players per battle, at once");
  const joinMs = [];
  const started = new Map(); // battleId -> the server's startedAt (ms)
  await pool(B, plan.joinConcurrency || 50, async (b) => {
    const id = ids[b];
    await Promise.all([1, 2, 3].map(async (slot) => {
      const t0 = now();
      const r = await request(plan.base, "POST", `/api/battles/${id}/join`, plan.players[4 * b + slot], { slot });
      const t1 = now();
      joinMs.push(t1 - t0);
      if (r.status !== 200) throw new Error(`join: ${r.status} ${JSON.stringify(r.body)}`);
      if (r.body.battle.status === "running") started.set(id, Date.parse(r.body.battle.startedAt));
    }));
  });

  log("waiting for every battle:finished");
  const deadline = now() + (plan.timeoutMs || 120000);
  const all = [...rounds.values()].flat();
  while (all.some((w) => w.finished === null) && now() < deadline) await new Promise((r) => setTimeout(r, 100));

  const lagMs = [];
  let lost = 0, outOfOrder = 0, unfinished = 0;
  for (const [id, list] of rounds) {
    const start = started.get(id);
    for (const w of list) {
      if (w.finished === null) unfinished++;
      const order = w.got.map(([r]) => r);
      for (let r = 0; r < plan.rounds; r++) if (!order.includes(r)) lost++;
      for (let k = 1; k < order.length; k++) if (order[k] <= order[k - 1]) outOfOrder++;
      if (start !== undefined) for (const [r, t] of w.got) lagMs.push(t - (start + (r + 1) * plan.roundSeconds * 1000));
    }
  }
  const result = {
    battles: B, watchers: watchers.length, lobby: lobby.length, rounds: plan.rounds,
    createMs: { p50: pct(createMs, 50), p99: pct(createMs, 99) },
    joinMs: { p50: pct(joinMs, 50), p99: pct(joinMs, 99), max: pct(joinMs, 100) },
    roundLagMs: { p50: pct(lagMs, 50), p99: pct(lagMs, 99), max: pct(lagMs, 100) },
    roundsExpected: all.length * plan.rounds, roundsLost: lost, outOfOrder, unfinished,
    startedSeen: started.size, lobbyEvents, lobbyEventsPerViewer: lobby.length ? lobbyEvents / lobby.length : 0,
  };
  for (const s of [...lobby, ...watchers]) s.close();
  agent.destroy();
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((e) => { log(e); process.exit(1); });
