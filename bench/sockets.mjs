// Socket.IO load generator on the official client (socket.io-client 4.8.4).
//
//   node bench/sockets.mjs < plan.json   → one JSON result on stdout (progress on stderr)
//
// plan = {
//   base: "http://127.0.0.1:PORT",
//   clients: 5000,                 // clients (anonymous viewers) ...
//   transports: ["websocket"],     // socket.io-client's `transports`; null = the client's default,
//                                  // plain io(url): polling first, then the upgrade (the frontend's way)
//   viewerTokens: [],              // ... the first ones authenticate with these (auth: {token})
//   connectConcurrency: 200,       // handshakes in flight while connecting
//   serverPid: 1234,               // VmRSS read from /proc/<pid>/status before and after connecting
//   settleMs: 2000,                // wait after connecting before reading memory
//   metricsPath: "/metrics",       // optional: the server's metrics text after connecting and at the end
//   fanout: {rounds: 5, path: "/api/admin/cases", token: "...", body: {...}, timeoutMs: 30000} | null,
//   mixed: {rate: 20, seconds: 20, caseId: "...", openers: [{token, username}], graceMs: 5000} | null,
//   separateOpeners: true,         // mixed: print {"ready":true}, then read the openers' result on stdin
//   storm: {timeoutMs: 120000} | null, // every client's connection dropped at once (a network blip);
//                                  // each reconnects with socket.io-client's default back-off;
//                                  // the result counts reconnect attempts and errors (by message)
//   role: "openers"                // this process only sends the openings (plan.mixed) and prints
//                                  // {answerTimes, stats}; bench/socket_bench.py runs both
// }
//
// fanout: each round POSTs a new case (`name` made unique); the server emits
// `cases:updated` to everyone; per round: the POST's round trip and when the
// first / median / last client had the event, from when the POST was sent.
// mixed: openings are sent in an OPEN loop at `rate` per second for `seconds`
// (request i is due at start + i / rate and is sent then whether or not
// earlier ones have been answered); latency counts from the due time. Every
// viewer records each `drop:new`; feed lag = when a viewer got the drop −
// when its opening was answered (negative: the event came first). A drop is
// matched to its opening by username and order. Only 127.0.0.1 is contacted.

import fs from "node:fs";
import { io } from "socket.io-client";

import { agent, log, now, onFinalTransport, pct, readLine, request, sleep, transportsOf, waitAll } from "./common.mjs";

function rssKiB(pid) {
  if (!pid) return null;
  const m = fs.readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/);
  return m ? Number(m[1]) : null;
}

// What an engine.io transport error carries: the HTTP status of a failed
// polling request, or the network error behind it.
function describe(e) {
  const d = e && e.description;
  if (typeof d === "number") return `status ${d}`;
  return d ? String(d.message || d.code || d) : "";
}

async function readPlan() {
  if (process.argv[2]) return JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  let data = "";
  for await (const chunk of process.stdin) data += chunk;
  return JSON.parse(data);
}

const state = { fanoutStamps: null, dropsByKey: new Map() };

let transportsOption = { transports: ["websocket"] }; // transportsOf(plan), set below
let reconnection = false; // true for plan.storm: the client's default back-off

function newClient(base, token) {
  const socket = io(base, { ...transportsOption, reconnection, forceNew: true, timeout: 30000,
    auth: token ? { token } : undefined });
  socket.dropCounts = new Map();
  socket.on("cases:updated", () => { if (state.fanoutStamps) state.fanoutStamps.push(now()); });
  socket.on("drop:new", (drop) => {
    const t = now();
    const k = (socket.dropCounts.get(drop.username) || 0) + 1;
    socket.dropCounts.set(drop.username, k);
    const key = `${drop.username}#${k}`;
    let list = state.dropsByKey.get(key);
    if (!list) state.dropsByKey.set(key, (list = []));
    list.push(t);
  });
  // The first connection only: a failure gives the client up (counted as not
  // connected). Once connected the handler goes, so that in a storm a failed
  // reconnection is retried with the client's back-off, as in a browser.
  return new Promise((resolve) => {
    const failed = (e) => {
      socket.off("connect", connected);
      log("connect_error", e.message, describe(e));
      socket.close();
      resolve(null);
    };
    const connected = () => { socket.off("connect_error", failed); resolve(socket); };
    socket.once("connect", connected);
    socket.once("connect_error", failed);
  });
}

async function connectAll(plan) {
  const sockets = [];
  let next = 0;
  const tokens = plan.viewerTokens || [];
  async function worker() {
    while (next < plan.clients) {
      const i = next++;
      const s = await newClient(plan.base, tokens[i]);
      if (s) sockets.push(s);
    }
  }
  await Promise.all(Array.from({ length: Math.min(plan.connectConcurrency || 200, plan.clients) }, worker));
  return sockets;
}

async function fanout(plan, sockets) {
  const f = plan.fanout;
  const rounds = [];
  for (let r = 0; r < f.rounds; r++) {
    state.fanoutStamps = [];
    const body = { ...f.body, name: `${f.body.name} ${Date.now()}-${r}` };
    const t0 = now();
    const res = await request(plan.base, "POST", f.path, f.token, body);
    const httpMs = now() - t0;
    if (res.status !== 201) throw new Error(`fan-out POST: HTTP ${res.status} ${res.body.slice(0, 200)}`);
    const deadline = now() + (f.timeoutMs || 30000);
    while (state.fanoutStamps.length < sockets.length && now() < deadline) await sleep(5);
    const stamps = state.fanoutStamps.map((t) => t - t0);
    state.fanoutStamps = null;
    rounds.push({ httpMs, received: stamps.length, firstMs: pct(stamps, 0), medianMs: pct(stamps, 50),
      lastMs: stamps.length ? Math.max(...stamps) : null });
    await sleep(500);
  }
  return rounds;
}

// The open loop of openings; returns the answer time of each successful opening
// keyed "username#k" (k-th answer for that user) and the latency figures.
async function openLoop(plan) {
  const m = plan.mixed;
  const total = Math.round(m.rate * m.seconds);
  const answers = []; // {due, done, status}
  const answerTimes = [];
  const perUserAnswers = new Map();
  const start = now() + 100;
  const pending = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / m.rate;
    const opener = m.openers[i % m.openers.length];
    pending.push(new Promise((resolve) => {
      setTimeout(async () => {
        const res = await request(plan.base, "POST", "/api/cases/open", opener.token, { caseId: m.caseId });
        const done = now();
        answers.push({ due, done, status: res.status });
        if (res.status === 200) {
          const k = (perUserAnswers.get(opener.username) || 0) + 1;
          perUserAnswers.set(opener.username, k);
          answerTimes.push([`${opener.username}#${k}`, done]);
        } else if (answers.filter((a) => a.status !== 200).length <= 3) {
          log(`opening: HTTP ${res.status} ${res.body.slice(0, 200)}`);
        }
        resolve();
      }, Math.max(0, due - now()));
    }));
  }
  await Promise.all(pending);
  const end = now();
  const ok = answers.filter((a) => a.status === 200);
  const latencies = ok.map((a) => a.done - a.due);
  return {
    answerTimes,
    stats: {
      sent: total, answered: ok.length, errors: answers.length - ok.length,
      // answered per second over the time until the last answer (not the sending time)
      answeredPerSecond: ok.length / Math.max(m.seconds, (end - start) / 1000), wallSeconds: (end - start) / 1000,
      latencyP50: pct(latencies, 50), latencyP99: pct(latencies, 99), latencyMax: pct(latencies, 100),
    },
  };
}

// What the viewers saw of the openings' drops: lag after each answer, and what is missing.
function feedStats(answerTimes, sockets) {
  const lags = [];
  let received = 0;
  let missedByAny = 0;
  for (const [key, done] of answerTimes) {
    const list = state.dropsByKey.get(key) || [];
    received += list.length;
    if (list.length < sockets.length) missedByAny++;
    for (const t of list) lags.push(t - done);
  }
  return {
    feedLagP50: pct(lags, 50), feedLagP99: pct(lags, 99), feedLagMax: pct(lags, 100),
    dropsExpectedDeliveries: answerTimes.length * sockets.length, dropsDelivered: received,
    deliveriesMissed: answerTimes.length * sockets.length - received, dropsMissedBySomeViewer: missedByAny,
  };
}

async function mixed(plan, sockets) {
  state.dropsByKey = new Map();
  let loop;
  if (plan.separateOpeners) {
    // The openings come from another process (role "openers"), so that handling
    // thousands of viewers' messages here never delays a request past its due time.
    process.stdout.write(JSON.stringify({ ready: true }) + "\n");
    loop = JSON.parse(await readLine());
  } else {
    loop = await openLoop(plan);
  }
  await sleep(plan.mixed.graceMs ?? 5000);
  return { ...loop.stats, ...feedStats(loop.answerTimes, sockets) };
}

// storm: wait until every socket is on its final transport, drop every connection at
// once (engine.close(): to the client a lost connection, so it reconnects with its
// default back-off: 1 s ± 50 %, doubling, at most 5 s), then time until each is back
// (connected again and, for the default client, upgraded).
const settled = (socket) => onFinalTransport(socket, transportsOption);

async function storm(plan, sockets) {
  const timeoutMs = plan.storm.timeoutMs ?? 120000;
  const ready = await waitAll(sockets, settled, timeoutMs);
  const backAt = new Array(sockets.length).fill(null);
  const t0 = now();
  // Why a client takes long: each failed attempt costs it a back-off of 1, 2, 4, 5 s (± 50 %).
  // Every failed attempt reaches the socket as connect_error, before its transport opened
  // (the manager's error, which the manager also reports as reconnect_error: not counted
  // twice) or after (e.g. the CONNECT's POST). Both are retried.
  const failures = { attempts: 0, errors: 0, byMessage: {} };
  sockets.forEach((s) => {
    s.io.on("reconnect_attempt", () => { failures.attempts++; });
    s.on("connect_error", (e) => {
      failures.errors++;
      const key = `${e && e.message} ${describe(e)}`.slice(0, 80);
      failures.byMessage[key] = (failures.byMessage[key] || 0) + 1;
    });
  });
  sockets.forEach((s, i) => {
    s.once("disconnect", () => {
      const onBack = () => { if (settled(s)) { backAt[i] = now() - t0; } else setTimeout(onBack, 10); };
      s.once("connect", onBack);
    });
    s.io.engine.close();
  });
  const deadline = now() + timeoutMs;
  while (backAt.some((t) => t === null) && now() < deadline) await sleep(20);
  const times = backAt.filter((t) => t !== null);
  return { readyBefore: ready, back: times.length, lost: sockets.length - times.length, ...failures,
    p50Ms: pct(times, 50), p99Ms: pct(times, 99), allBackMs: times.length ? Math.max(...times) : null };
}

const plan = await readPlan();
transportsOption = transportsOf(plan);
if (plan.storm) reconnection = true;
if (plan.role === "openers") {
  process.stdout.write(JSON.stringify(await openLoop(plan)) + "\n");
  agent.destroy();
  process.exit(0);
}
const result = { clients: plan.clients };
result.rssBeforeKiB = rssKiB(plan.serverPid);
const t0 = now();
const sockets = await connectAll(plan);
result.connectSeconds = (now() - t0) / 1000;
result.connected = sockets.length;
log(`connected ${sockets.length}/${plan.clients} in ${result.connectSeconds.toFixed(2)} s`);
await sleep(plan.settleMs ?? 2000);
result.rssConnectedKiB = rssKiB(plan.serverPid);
if (plan.metricsPath) result.metricsConnected = (await request(plan.base, "GET", plan.metricsPath)).body;
if (result.rssBeforeKiB && result.rssConnectedKiB) {
  result.kibPerSocket = (result.rssConnectedKiB - result.rssBeforeKiB) / Math.max(1, sockets.length);
}
if (plan.fanout) result.fanout = await fanout(plan, sockets);
if (plan.mixed) result.mixed = await mixed(plan, sockets);
if (plan.storm) {
  if (plan.metricsPath) result.metricsBeforeStorm = (await request(plan.base, "GET", plan.metricsPath)).body;
  result.storm = await storm(plan, sockets);
  log(`storm: ${result.storm.back}/${sockets.length} back, all within ${result.storm.allBackMs?.toFixed(0)} ms`);
}
result.rssEndKiB = rssKiB(plan.serverPid);
if (plan.metricsPath) result.metricsEnd = (await request(plan.base, "GET", plan.metricsPath)).body;
process.stdout.write(JSON.stringify(result) + "\n");
for (const s of sockets) s.close();
agent.destroy();
await sleep(500);
process.exit(0);
