// Chat load generator on the official client (socket.io-client 4.8.4).
//
//   node bench/chat.mjs plan.json     → JSON on stdout (progress on stderr)
//
// plan = {
//   base: "http://127.0.0.1:PORT",
//   role: "viewers" | "senders",
//   // viewers: `clients` anonymous websocket viewers; the first `probes` record when
//   // each chat:message arrived. Prints {"ready":true}, reads the senders' result
//   // (one JSON line) on stdin, waits graceMs, prints the delivery figures.
//   clients: 5000, probes: 50, connectConcurrency: 200, graceMs: 5000,
//   // senders: one authenticated socket per token; chat:send in an OPEN loop at
//   // `rate` messages per second in total for `seconds` (message i is due at
//   // start + i / rate and is sent then, by sender i % senders, whether or not
//   // earlier ones have been acked); ack latency counts from the due time.
//   tokens: ["..."], rate: 10, seconds: 30,
// }
//
// Delivery lag = when a probe viewer got message i − when message i was due.
// Missed = accepted messages × viewers − chat:message events the viewers got.
// Only 127.0.0.1 is contacted.

import fs from "node:fs";
import { io } from "socket.io-client";

import { log, now, onFinalTransport, pct, readLine, sleep, transportsOf, waitAll } from "./common.mjs";

const PREFIX = "bench message ";

let transportsOption = { transports: ["websocket"] }; // transportsOf(plan), set below

function connect(base, token, onMessage) {
  const socket = io(base, { ...transportsOption, reconnection: false, forceNew: true, timeout: 30000,
    auth: token ? { token } : undefined });
  if (onMessage) socket.on("chat:message", onMessage);
  return new Promise((resolve) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (e) => { log("connect_error", e.message); socket.close(); resolve(null); });
  });
}

async function connectAll(plan, count, tokenOf, handlerOf) {
  const sockets = [];
  let next = 0;
  async function worker() {
    while (next < count) {
      const i = next++;
      const s = await connect(plan.base, tokenOf(i), handlerOf(i));
      if (s) sockets.push(s);
    }
  }
  await Promise.all(Array.from({ length: Math.min(plan.connectConcurrency || 200, count) }, worker));
  return sockets;
}

async function viewers(plan) {
  const arrivals = new Map(); // message index -> [probe arrival times]
  let received = 0;
  const probes = plan.probes ?? 50;
  const t0 = now();
  const sockets = await connectAll(plan, plan.clients, () => null, (i) => (i < probes
    ? (m) => {
      received++;
      const t = now();
      const k = Number(String(m?.text).slice(PREFIX.length));
      let list = arrivals.get(k);
      if (!list) arrivals.set(k, (list = []));
      list.push(t);
    }
    : () => { received++; }));
  const connectSeconds = (now() - t0) / 1000;
  log(`viewers: connected ${sockets.length}/${plan.clients} in ${connectSeconds.toFixed(2)} s`);
  // Measure from a steady state: the default client's upgrades done too.
  const settled = await waitAll(sockets, (s) => onFinalTransport(s, transportsOption), 60000);
  log(`viewers: ${settled} on their final transport after ${((now() - t0) / 1000).toFixed(2)} s`);
  process.stdout.write(JSON.stringify({ ready: true }) + "\n");
  const senders = JSON.parse(await readLine());
  await sleep(plan.graceMs ?? 5000);
  const lags = [];
  let missedByAProbe = 0;
  const probeCount = Math.min(probes, sockets.length);
  for (const [i, due] of senders.accepted) {
    const list = arrivals.get(i) || [];
    if (list.length < probeCount) missedByAProbe++;
    for (const t of list) lags.push(t - due);
  }
  const expected = senders.accepted.length * sockets.length;
  const result = {
    viewers: sockets.length, connectSeconds, ...senders.stats,
    lagP50: pct(lags, 50), lagP99: pct(lags, 99), lagMax: pct(lags, 100),
    deliveriesExpected: expected, deliveriesMissed: expected - received, messagesMissedByAProbe: missedByAProbe,
  };
  for (const s of sockets) s.close();
  return result;
}

async function senders(plan) {
  const sockets = await connectAll(plan, plan.tokens.length, (i) => plan.tokens[i], () => null);
  if (sockets.length < plan.tokens.length) throw new Error(`senders: ${sockets.length}/${plan.tokens.length} connected`);
  const total = Math.round(plan.rate * plan.seconds);
  const start = now() + 200;
  const acks = []; // {i, due, done, code}
  const pending = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / plan.rate;
    const socket = sockets[i % sockets.length];
    pending.push(new Promise((resolve) => {
      setTimeout(async () => {
        let code;
        try {
          const ack = await socket.timeout(60000).emitWithAck("chat:send", { text: `${PREFIX}${i}` });
          code = ack?.success ? "ok" : ack?.code || "bad_ack";
        } catch {
          code = "no_ack";
        }
        acks.push({ i, due, done: now(), code });
        resolve();
      }, Math.max(0, due - now()));
    }));
  }
  await Promise.all(pending);
  const end = now();
  const ok = acks.filter((a) => a.code === "ok");
  const latencies = acks.map((a) => a.done - a.due); // every answer, refusals included (they must be fast too)
  const okLatencies = ok.map((a) => a.done - a.due);
  const refused = {};
  for (const a of acks) if (a.code !== "ok") refused[a.code] = (refused[a.code] || 0) + 1;
  for (const s of sockets) s.close();
  return {
    accepted: ok.map((a) => [a.i, a.due]),
    stats: {
      sent: total, acked: ok.length, refused, wallSeconds: (end - start) / 1000,
      ackP50: pct(okLatencies, 50), ackP99: pct(okLatencies, 99), ackMax: pct(okLatencies, 100),
      answerP99: pct(latencies, 99),
    },
  };
}

const plan = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
transportsOption = transportsOf(plan);
const result = plan.role === "senders" ? await senders(plan) : await viewers(plan);
process.stdout.write(JSON.stringify(result) + "\n");
await sleep(200);
process.exit(0);
