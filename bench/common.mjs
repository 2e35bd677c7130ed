// What the Node load generators (sockets.mjs, chat.mjs, battles.mjs) share: the
// clock, percentiles, one line from stdin, a keep-alive HTTP client, and how a
// plan says clients connect. Only 127.0.0.1 is contacted.

import http from "node:http";
import { performance } from "node:perf_hooks";

export const log = (...a) => console.error(...a);
// Absolute milliseconds: the same clock in every process on this machine (the
// viewers and the senders/openers run in separate processes).
export const now = () => performance.timeOrigin + performance.now();
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function pct(values, p) {
  if (!values.length) return null;
  const s = Float64Array.from(values).sort();
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)];
}

export function readLine() {
  return new Promise((resolve) => {
    let data = "";
    const onData = (chunk) => {
      data += chunk;
      const nl = data.indexOf("\n");
      if (nl >= 0) {
        process.stdin.off("data", onData);
        process.stdin.pause();
        resolve(data.slice(0, nl));
      }
    };
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", onData);
    process.stdin.resume();
  });
}

export const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

// {status, body: the response text}; status 0 and the error's text when the request failed.
export function request(base, method, path, token, body) {
  return new Promise((resolve) => {
    const url = new URL(path, base);
    const payload = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (payload) headers["Content-Length"] = payload.length;
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method, headers, agent,
      timeout: 60000 }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", (e) => resolve({ status: 0, body: String(e) }));
    req.on("timeout", () => req.destroy(new Error("timeout")));
    if (payload) req.write(payload);
    req.end();
  });
}

// socket.io-client options for plan.transports: absent = websocket only (the older
// runs), null = the client's default, plain io(url): polling, then the upgrade.
// plan.keepAlive: polling requests on kept-alive connections, as a browser makes
// them (the Node client's own default opens a connection per request).
const browserLikeAgent = new http.Agent({ keepAlive: true });

export function transportsOf(plan) {
  if (!("transports" in plan)) return { transports: ["websocket"] };
  const keepAlive = plan.keepAlive ? { agent: browserLikeAgent } : {};
  return plan.transports === null ? keepAlive : { transports: plan.transports, ...keepAlive };
}

// Connected, and for the default client (no `transports` option) upgraded to the
// websocket: the state a steady-state measurement starts from.
export function onFinalTransport(socket, options) {
  return socket.connected && socket.io.engine
    && (options.transports ? true : socket.io.engine.transport.name === "websocket");
}

// How many of `sockets` pass `check` once all do, or when `timeoutMs` is over.
export async function waitAll(sockets, check, timeoutMs) {
  const deadline = now() + timeoutMs;
  while (!sockets.every(check) && now() < deadline) await sleep(20);
  return sockets.filter(check).length;
}
