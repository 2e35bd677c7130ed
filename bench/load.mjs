// A small HTTP load generator on Node's built-in `http` (no packages).
//
//   node bench/load.mjs < plan.json  → one JSON result on stdout
//
// plan = {
//   base: "http://127.0.0.1:PORT",
//   requests: [{method, path, headers?, body?}, ...],  // request i uses requests[i % length]
//   total: 3000,             // requests to send
//   inflight: 50,            // fixed number in flight (closed loop) ...
//   rate: null,              // ... or requests per second (open loop) when set
//   timeLimit: 120,          // seconds; stops sending after it
//   idempotencyPrefix: null, // when set, request i carries "Idempotency-Key: <prefix>-<i>"
//   expect: [200]            // statuses that count as ok
// }
//
// Latency is counted from when each request was *due*: in the closed loop a
// request is due when the slot it takes was freed (so it is the response time);
// in the open loop it is due at start + i / rate, whether or not a connection
// was free then (no coordinated omission). Only 127.0.0.1 is ever contacted.

import http from "node:http";

function readStdin() {
  return new Promise((resolve, reject) => {
    let data = "";
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", (chunk) => (data += chunk));
    process.stdin.on("end", () => resolve(data));
    process.stdin.on("error", reject);
  });
}

function percentile(sorted, p) {
  if (!sorted.length) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

const plan = JSON.parse(await readStdin());
const url = new URL(plan.base);
if (url.hostname !== "127.0.0.1" && url.hostname !== "localhost") throw new Error("loopback only");
const inflight = plan.inflight ?? 50;
const total = plan.total;
const timeLimitMs = (plan.timeLimit ?? 120) * 1000;
const expect = new Set(plan.expect ?? [200]);
const agent = new http.Agent({ keepAlive: true, maxSockets: plan.rate ? 1000 : inflight });
const templates = plan.requests.map((r) => {
  const body = r.body === undefined ? null : Buffer.from(typeof r.body === "string" ? r.body : JSON.stringify(r.body));
  const headers = { ...(r.headers ?? {}) };
  if (body) {
    headers["Content-Type"] ??= "application/json";
    headers["Content-Length"] = body.length;
  }
  return { method: r.method ?? "GET", path: r.path, headers, body };
});

const latencies = [];
const finishes = [];
const statuses = {};
let ok = 0, errors = 0, sent = 0, bytes = 0;
const t0 = performance.now();

function send(i, due) {
  const t = templates[i % templates.length];
  const headers = plan.idempotencyPrefix ? { ...t.headers, "Idempotency-Key": `${plan.idempotencyPrefix}-${i}` } : t.headers;
  return new Promise((resolve) => {
    const req = http.request(
      { host: url.hostname, port: url.port, method: t.method, path: t.path, headers, agent },
      (res) => {
        res.on("data", (chunk) => (bytes += chunk.length));
        res.on("end", () => {
          const end = performance.now();
          statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
          if (expect.has(res.statusCode)) {
            ok += 1;
            latencies.push(end - due);
            finishes.push(end - t0);
          } else errors += 1;
          resolve();
        });
      },
    );
    req.on("error", (err) => {
      errors += 1;
      statuses[err.code ?? "error"] = (statuses[err.code ?? "error"] ?? 0) + 1;
      resolve();
    });
    if (t.body) req.write(t.body);
    req.end();
  });
}

if (plan.rate) {
  const pending = [];
  const interval = 1000 / plan.rate;
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (sent < total && t0 + sent * interval <= now && now - t0 < timeLimitMs) {
        pending.push(send(sent, t0 + sent * interval));
        sent += 1;
      }
      if (sent >= total || now - t0 >= timeLimitMs) resolve();
      else setTimeout(tick, Math.max(0, t0 + sent * interval - performance.now()));
    };
    tick();
  });
  await Promise.all(pending);
} else {
  const worker = async () => {
    while (sent < total && performance.now() - t0 < timeLimitMs) {
      const i = sent++;
      await send(i, performance.now());
    }
  };
  await Promise.all(Array.from({ length: Math.min(inflight, total) }, worker));
}

const elapsed = (performance.now() - t0) / 1000;
agent.destroy();
latencies.sort((a, b) => a - b);
finishes.sort((a, b) => a - b);
const q = Math.floor(finishes.length / 4);
// Completions per `binSeconds` (default 1 s) of the run, for throughput-over-time plots.
const binMs = (plan.binSeconds ?? 1) * 1000;
const bins = [];
for (const f of finishes) {
  const b = Math.floor(f / binMs);
  while (bins.length <= b) bins.push(0);
  bins[b] += 1;
}
const rateOf = (arr) => (arr.length > 1 ? ((arr.length - 1) * 1000) / (arr[arr.length - 1] - arr[0]) : null);
const round = (x, d = 1) => (x == null ? null : Math.round(x * 10 ** d) / 10 ** d);
process.stdout.write(
  JSON.stringify({
    sent, ok, errors, statuses, elapsed: round(elapsed, 3), bytes,
    rps: round(ok / elapsed),
    p50: round(percentile(latencies, 50), 2), p95: round(percentile(latencies, 95), 2),
    p99: round(percentile(latencies, 99), 2), max: round(latencies[latencies.length - 1], 2),
    firstQuarterRps: q > 1 ? round(rateOf(finishes.slice(0, q))) : null,
    lastQuarterRps: q > 1 ? round(rateOf(finishes.slice(finishes.length - q))) : null,
    bins: plan.bins ? bins : undefined,
  }) + "\n",
);
