"""Shared pieces of the benchmarks: run `python run.py` on a loopback port, seed it
through the public API, drive a bounded closed-loop load, and summarise latencies.

Only 127.0.0.1 is ever contacted. Secrets are generated per run and never written
anywhere but the child's environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
LOAD_MJS = str(ROOT / "bench" / "load.mjs")
START_LIMIT = 60.0  # seconds for the server to answer /health
STOP_LIMIT = 45.0  # seconds for a graceful SIGTERM shutdown before SIGKILL
CASE_PRICE = 100  # cents
PAYMENT_MAX = 1_000_000  # the server's default PAYMENT_MAX_AMOUNT, per delivery

# Settings the child must not inherit from the caller's environment.
_SCRUBBED = (
    "ENVIRONMENT", "HOST", "PORT", "MONGODB_URI", "MONGODB_DB", "JWT_SECRET", "PAYMENT_WEBHOOK_SECRET",
    "ADMIN_USERNAME", "ADMIN_PASSWORD", "CORS_ORIGINS", "REDIS_URL", "LOG_LEVEL", "LOG_FORMAT", "CURRENCY",
    "ARGON2_TIME_COST", "ARGON2_MEMORY_KIB", "ARGON2_PARALLELISM", "METRICS_TOKEN",
)
_SCRUBBED_PREFIXES = ("RATE_LIMIT_", "SOCKET_", "IDEMPOTENCY_", "RECOVERY_", "PAYMENT_")


def save_results(kind: str, label: str, data: dict) -> Path:
    """bench/results/<kind>-<time>[-<label>].json with the source revision and
    the command line; returns its path relative to the repository."""
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    out = results / f"{kind}-{time.strftime('%Y%m%dT%H%M%S')}{'-' + label if label else ''}.json"
    out.write_text(json.dumps({"machine": source_revision(), "argv": sys.argv[1:], **data}, indent=1))
    return out.relative_to(ROOT)


def log(msg: str) -> None:
    """A progress line on stderr, with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def node_load(plan: dict) -> dict:
    """One run of bench/load.mjs (Node's http, open or closed loop) with `plan`; its JSON result."""
    proc = await asyncio.create_subprocess_exec("node", LOAD_MJS, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate(json.dumps(plan).encode())
    if proc.returncode:
        raise RuntimeError(f"load.mjs exited with {proc.returncode}")
    return json.loads(out)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def rss_kib(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status (VmRSS, KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """CPU time a process (all its threads) has used so far, user + system, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def source_revision() -> str:
    """The commit the measured server code is at, and whether it has local changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10).stdout

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no").splitlines()
    dirty = [line for line in changed if not line[3:].startswith("bench/")]
    return f"{head}{' + uncommitted changes' if dirty else ''}"


def cpu_busy_percent(seconds: float = 1.0) -> float:
    """How busy all cores were over the next `seconds` (from /proc/stat), before
    anything of ours starts: other work on this 2-core machine skews every figure."""
    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 100.0 * (1 - (idle1 - idle0) / max(1, total1 - total0))


def machine_line() -> str:
    """Cores, Python, kernel, server revision, and how busy the machine was just before."""
    busy = cpu_busy_percent()
    warning = "  <-- something else is running: figures will be low" if busy > 10 else ""
    return (f"{os.cpu_count()} cores (nproc), Python {platform.python_version()}, {platform.platform()}; "
            f"server code {source_revision()}; CPU {busy:.0f} % busy before start{warning}")


@dataclass
class LocalServer:
    """A child process serving HTTP on HOST:port."""

    proc: asyncio.subprocess.Process
    port: int

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class Server(LocalServer):
    """A running `python run.py` child with the credentials the script generated."""

    admin_username: str
    admin_password: str
    webhook_secret: str
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


async def start_server(extra_env: dict[str, str] | None = None) -> Server:
    """Start `python run.py` on a free loopback port and wait until /health says ok.

    Password hashing is set cheap (argon2 t=1, 1 MiB) because seeding registers
    many users and registration is not what these benchmarks measure; rate
    limits are off because every request comes from 127.0.0.1."""
    port = free_port()
    admin_user, admin_pass = "bench_admin", secrets.token_urlsafe(24)
    webhook_secret = secrets.token_urlsafe(32)
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED and not k.startswith(_SCRUBBED_PREFIXES)}
    env.update({
        "HOST": HOST, "PORT": str(port), "LOG_LEVEL": "WARNING",
        "ADMIN_USERNAME": admin_user, "ADMIN_PASSWORD": admin_pass,
        "JWT_SECRET": secrets.token_urlsafe(32), "PAYMENT_WEBHOOK_SECRET": webhook_secret,
        "ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "1024", "ARGON2_PARALLELISM": "1",
        "CORS_ORIGINS": f"http://{HOST}:{port}",
        # Capacity is measured, not the abuse limits: all traffic comes from one IP.
        "RATE_LIMIT_ENABLED": "false",
        # Likewise the per-client socket limits: thousands of viewers from one address.
        "SOCKET_MAX_PER_ADDRESS": "0", "SOCKET_MAX_CONNECTIONS": "0",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra_env or {})
    # An empty working directory: the service reads `.env` from its cwd, and a
    # developer's `.env` must not change what is measured.
    workdir = Path(tempfile.mkdtemp(prefix="cyberhub-bench-"))
    log_path = workdir / "server.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "run.py"), cwd=workdir, env=env,
                                                    stdout=log_file, stderr=asyncio.subprocess.STDOUT)
    server = Server(proc, port, admin_user, admin_pass, webhook_secret, log_path)
    deadline = time.monotonic() + START_LIMIT
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{server.base}/health", timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:
                        return server
            await asyncio.sleep(0.2)
    await stop_server(server)
    raise RuntimeError(f"server did not become healthy within {START_LIMIT:.0f} s:\n{server.log_tail()}")


async def stop_server(server: Server) -> None:
    """SIGTERM (graceful shutdown), then SIGKILL if it takes longer than STOP_LIMIT."""
    if server.proc.returncode is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(server.proc.wait(), STOP_LIMIT)
        except TimeoutError:
            server.proc.kill()
            await asyncio.wait_for(server.proc.wait(), 10)


# --- seeding through the public API ----------------------------------------------

async def _json(resp: aiohttp.ClientResponse, expected: int) -> dict:
    body = await resp.json(content_type=None)
    if resp.status != expected:
        raise RuntimeError(f"{resp.method} {resp.url.path}: HTTP {resp.status} (wanted {expected}): {body}")
    return body


async def login(session: aiohttp.ClientSession, server: Server, username: str, password: str) -> str:
    async with session.post(f"{server.base}/api/auth/login", json={"username": username, "password": password}) as r:
        return (await _json(r, 200))["token"]


async def admin_token(session: aiohttp.ClientSession, server: Server) -> str:
    return await login(session, server, server.admin_username, server.admin_password)


def case_body(name: str, items: int) -> dict:
    rarities = ("common", "uncommon", "rare", "epic", "legendary")
    return {
        "name": name,
        "price": CASE_PRICE,
        "image": f"https://img.example/cases/{name}.png",
        "items": [
            {"name": f"{name} item {i}", "rarity": rarities[i % len(rarities)], "price": 10 + 37 * i,
             "weight": max(1, 1000 // (i + 1)), "image": f"https://img.example/items/{name}-{i}.png"}
            for i in range(items)
        ],
    }


async def create_case(session: aiohttp.ClientSession, server: Server, token: str, name: str, items: int) -> str:
    async with session.post(f"{server.base}/api/admin/cases", json=case_body(name, items),
                            headers={"Authorization": f"Bearer {token}"}) as r:
        return (await _json(r, 201))["case"]["id"]


@dataclass
class User:
    id: str
    token: str


async def register(session: aiohttp.ClientSession, server: Server, username: str) -> User:
    body = {"username": username, "password": secrets.token_urlsafe(12)}
    async with session.post(f"{server.base}/api/auth/register", json=body) as r:
        data = await _json(r, 201)
    return User(id=data["user"]["id"], token=data["token"])


def sign(secret: str, raw_body: bytes, timestamp: int) -> str:
    """Same scheme as cyberhub/money/payments.py `sign` (kept here so bench/ imports nothing from the app)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw_body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


async def top_up(session: aiohttp.ClientSession, server: Server, user_id: str, amount: int) -> None:
    """Credit `amount` cents through signed webhook deliveries (split at the per-payment cap)."""
    while amount > 0:
        part = min(amount, PAYMENT_MAX)
        raw = json.dumps({"paymentId": f"bench-{secrets.token_hex(12)}", "userId": user_id, "amount": part,
                          "currency": "USD", "status": "succeeded"}).encode()
        signature = sign(server.webhook_secret, raw, int(time.time()))
        headers = {"Content-Type": "application/json", "X-Signature": signature}
        async with session.post(f"{server.base}/api/payment/callback", data=raw, headers=headers) as r:
            await _json(r, 200)
        amount -= part


async def gather_bounded(jobs: list[Callable[[], Awaitable]], concurrency: int) -> list:
    """Run the job factories with at most `concurrency` in flight; results in order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable]) -> object:
        async with gate:
            return await job()

    return await asyncio.gather(*(one(j) for j in jobs))


# --- load and statistics -----------------------------------------------------------

@dataclass
class LoadResult:
    name: str
    requests: int
    concurrency: int
    elapsed: float
    latencies: list[float]  # seconds, of the requests with the expected status
    errors: dict[str, int] = field(default_factory=dict)
    finish_times: list[float] = field(default_factory=list)  # seconds since start, per good request
    timed_out: bool = False

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def pct_ms(self, p: float) -> float:
        return percentile(self.latencies, p) * 1000


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of unsorted values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


async def run_load(
    name: str,
    request: Callable[[int], Awaitable[int]],
    *,
    total: int,
    concurrency: int,
    expected_status: int = 200,
    time_limit: float = 120.0,
) -> LoadResult:
    """Closed loop: `concurrency` workers issue `request(i)` for i in 0..total-1 and
    stop when all are done or `time_limit` seconds have passed, whichever is first.
    `request` returns the HTTP status after reading the whole body."""
    next_index = 0
    latencies: list[float] = []
    finish: list[float] = []
    errors: dict[str, int] = {}
    start = time.perf_counter()
    deadline = start + time_limit

    async def worker() -> None:
        nonlocal next_index
        while next_index < total and time.perf_counter() < deadline:
            i = next_index
            next_index += 1
            t0 = time.perf_counter()
            try:
                status = await request(i)
            except (TimeoutError, aiohttp.ClientError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                continue
            t1 = time.perf_counter()
            if status == expected_status:
                latencies.append(t1 - t0)
                finish.append(t1 - start)
            else:
                errors[f"HTTP {status}"] = errors.get(f"HTTP {status}", 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return LoadResult(name, total, concurrency, elapsed, latencies, errors, finish,
                      timed_out=next_index < total)


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --- yardsticks ----------------------------------------------------------------------

async def wrk(url: str, seconds: int, connections: int, threads: int = 2) -> dict:
    """One `wrk -t<threads> -c<connections> -d<seconds>s --latency` run: req/s, p50 and p99 (ms),
    and any socket errors or non-2xx/3xx answers it reported."""
    cmd = [shutil.which("wrk") or "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE)
    raw, _ = await asyncio.wait_for(proc.communicate(), seconds + 30)
    out = raw.decode()

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)] if m else math.nan

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"^\s*(\d+) requests in", out, re.MULTILINE)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors:.*$", out, re.MULTILINE)
    return {"rps": float(rps.group(1)) if rps else math.nan, "p50": ms("50"), "p99": ms("99"),
            "ok": int(total.group(1)) if total else 0,
            "problems": " ".join(x for x in (errors.group(0) if errors else "",
                                             f"non-2xx {non2xx.group(1)}" if non2xx else "") if x) or "none"}


@dataclass
class BareTornado(LocalServer):
    """bench/bare_tornado.py serving fixed bytes at /api/cases (the catalogue's yardstick)."""

    body_paths: list[Path]


async def start_bare_tornado(body: bytes, open_body: bytes | None = None, *, uvloop: bool = False) -> BareTornado:
    """Start bench/bare_tornado.py with `body` (GET /api/cases) and, if given, `open_body`
    (POST /api/cases/open), on asyncio's standard loop or uvloop, and wait until it
    serves exactly those bytes."""
    paths = []
    for data in (body, open_body) if open_body is not None else (body,):
        fd, name = tempfile.mkstemp(prefix="cyberhub-bare-", suffix=".json")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        paths.append(Path(name))
    port = free_port()
    proc = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "bench" / "bare_tornado.py"), str(port),
                                                *map(str, paths), *(["--uvloop"] if uvloop else []))
    bare = BareTornado(proc, port, paths)
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{bare.base}/api/cases") as r:
                    if await r.read() == body:
                        return bare
            await asyncio.sleep(0.1)
    await stop_bare_tornado(bare)
    raise RuntimeError("bare Tornado did not start")


async def stop_bare_tornado(bare: BareTornado) -> None:
    if bare.proc.returncode is None:
        bare.proc.terminate()
        await bare.proc.wait()
    for path in bare.body_paths:
        path.unlink(missing_ok=True)
