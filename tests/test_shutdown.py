"""Graceful shutdown of a real `python run.py` process on SIGTERM.

In flight when the signal arrives: a payment webhook whose body the test holds
back (a client stalled mid-body) and a batch of registrations, each hashing a
password in a worker thread. Then: the listener closes while the process is
still serving them; the webhook, whose body never arrived and so never
started, is refused at once (503 `shutting_down`, nothing credited) instead
of holding shutdown for SHUTDOWN_TIMEOUT_SECONDS; every registration
completes with its normal status; the sockets are then told the server is
going away, and the process exits 0. A second signal during shutdown ends the
process at once (exit 4, logged).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time

from cyberhub.money.webhook import sign
from tests.conftest import JWT_SECRET, WEBHOOK_SECRET
from tests.support.client import WAIT, Recorder, connect_socket
from tests.support.process import Process, refuses_connections, start_server

REGISTRATIONS = 12


async def send(port: int, method: str, path: str, body: bytes, *, headers: dict[str, str] | None = None,
               hold_back: int = 0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Writes one HTTP/1.1 request on a new connection, all but the last
    `hold_back` bytes of its body, and returns the open connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
            "Content-Type: application/json", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body[: len(body) - hold_back])
    await writer.drain()
    return reader, writer


async def response(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[int, dict]:
    raw = await asyncio.wait_for(reader.read(), WAIT)  # the server closes after the response
    writer.close()
    assert raw, "connection closed without a response"
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


async def test_sigterm_finishes_in_flight_requests_then_tells_sockets_and_exits_0():
    server: Process = await start_server(
        "backend",
        JWT_SECRET=JWT_SECRET,
        PAYMENT_WEBHOOK_SECRET=WEBHOOK_SECRET,
        # A real password-hashing cost, so registrations spend a while in worker threads.
        ARGON2_TIME_COST="2",
        ARGON2_MEMORY_KIB="16384",
        ARGON2_PARALLELISM="1",
        SHUTDOWN_TIMEOUT_SECONDS="120",  # the held request decides when shutdown may go on
        SOCKET_PING_INTERVAL="1",
        SOCKET_PING_TIMEOUT="2",
        RATE_LIMIT_ENABLED="false",  # not what this test is about
    )
    sockets = []
    try:
        port = server.port
        reader, writer = await send(port, "POST", "/api/auth/register",
                                    json.dumps({"username": "payer", "password": "correct horse"}).encode())
        status, registered = await response(reader, writer)
        assert status == 201, registered
        user_id = registered["user"]["id"]

        recorders = []
        for transport in ("websocket", "polling"):
            client, recorder = await connect_socket(f"http://127.0.0.1:{port}", token=registered["token"],
                                                    transports=[transport])
            client.on("disconnect", _recording("<disconnect>", recorder))
            sockets.append(client)
            recorders.append(recorder)

        payment = json.dumps({"paymentId": "pay_shutdown", "userId": user_id, "amount": 700,
                              "currency": "USD", "status": "succeeded"}).encode()
        held = await send(port, "POST", "/api/payment/callback", payment, hold_back=5,
                          headers={"X-Signature": sign(WEBHOOK_SECRET, payment, int(time.time()))})
        batch = [
            await send(port, "POST", "/api/auth/register",
                       json.dumps({"username": f"late_{i}", "password": "correct horse"}).encode())
            for i in range(REGISTRATIONS)
        ]
        # Barrier: the server answers a request on a connection opened after all of
        # those, so it has accepted them and read their (already delivered) headers.
        reader, writer = await send(port, "GET", "/health", b"")
        assert (await response(reader, writer))[0] == 200

        server.signal()

        # The listener closes while the process is still serving the registrations;
        # the webhook still waiting for its body is refused, not waited for.
        line = await server.wait_for_line(re.compile(r"Shutting down: no new connections.*\((\d+) refused"),
                                          "the shutdown line")
        assert line.group(1) == "1", line.group(0)
        assert await refuses_connections(port)
        assert server.running

        status, refused = await response(*held)
        assert (status, refused["code"], refused["success"]) == (503, "shutting_down", False), refused
        registrations = [await response(*conn) for conn in batch]
        assert [status for status, _ in registrations] == [201] * REGISTRATIONS, registrations
        assert sorted(body["user"]["username"] for _, body in registrations) == sorted(
            f"late_{i}" for i in range(REGISTRATIONS))

        # Nothing was credited by the refused webhook; the sockets were told.
        for recorder in recorders:
            await recorder.wait_for("<disconnect>")
            assert f"balance:updated:{user_id}" not in recorder.names(), recorder.names()
            # Told by the server (an engine.io close), not a dropped connection ("transport error").
            assert recorder.of("<disconnect>") == ["server disconnect"]

        assert await server.wait() == 0, server.output
        assert "Shutdown complete" in server.output, server.output
        assert "Shutdown timeout" not in server.output, server.output
        assert "Traceback" not in server.output, server.output
    finally:
        for client in sockets:
            await client.disconnect()
        await server.kill()


async def test_a_second_signal_during_shutdown_ends_the_process_at_once():
    """Shutdown would wait SHUTDOWN_TIMEOUT_SECONDS (120 here) for a running
    request; a second SIGINT ends it at once with exit 4 and a log line."""
    server: Process = await start_server(
        "backend", JWT_SECRET=JWT_SECRET, PAYMENT_WEBHOOK_SECRET=WEBHOOK_SECRET,
        # A hash of seconds (start-up computes one too) against the milliseconds between the
        # barrier and the second signal: the registration is still hashing at both signals.
        ARGON2_TIME_COST="600", ARGON2_MEMORY_KIB="8192", ARGON2_PARALLELISM="1",
        SHUTDOWN_TIMEOUT_SECONDS="120", RATE_LIMIT_ENABLED="false",
    )
    try:
        port = server.port
        running = await send(port, "POST", "/api/auth/register",
                             json.dumps({"username": "slow", "password": "correct horse"}).encode())
        reader, writer = await send(port, "GET", "/health", b"")  # barrier: the registration's headers are read
        assert (await response(reader, writer))[0] == 200

        server.signal(signal.SIGINT)
        line = await server.wait_for_line(re.compile(r"Shutting down: .*waiting for (\d+) request"), "shutdown")
        assert line.group(1) == "1", line.group(0)
        server.signal(signal.SIGINT)
        assert await server.wait(limit=WAIT) == 4, server.output
        assert "Second signal during shutdown: exiting at once, 1 request(s) abandoned" in server.output
        assert "Shutdown complete" not in server.output and "Traceback" not in server.output, server.output
        running[1].close()
    finally:
        await server.kill()


def _recording(name: str, recorder: Recorder):
    async def handler(*args: object) -> None:
        await recorder.record(name, *args)

    return handler
