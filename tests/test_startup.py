"""Start-up failures of a real `python run.py`: one clear log line and a
non-zero exit, never a traceback — port in use, a signal while waiting for the
database, settings production refuses (also through `--check-config`, which
docker-compose runs before the backend)."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import tempfile

import pytest

from tests.conftest import JWT_SECRET, WEBHOOK_SECRET
from tests.support.process import ROOT, Process, free_port, server_env, start_server

PRODUCTION = {"ENVIRONMENT": "production", "JWT_SECRET": JWT_SECRET, "PAYMENT_WEBHOOK_SECRET": WEBHOOK_SECRET,
              "CORS_ORIGINS": "https://cyberhub.example", "METRICS_TOKEN": "a-metrics-token-for-tests",
              "MONGODB_URI": "mongodb://127.0.0.1:1/"}


async def spawn(*args: str, **settings: str) -> Process:
    """`python run.py ARGS` in an empty directory (no .env), not waited for."""
    cwd = tempfile.mkdtemp(prefix="cyberhub-start-")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "run.py"), *args, cwd=cwd, env=server_env(HOST="127.0.0.1", **settings),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    return Process("starting", proc, 0, cwd)


def assert_one_clear_error(process: Process, text: str) -> None:
    assert "Traceback" not in process.output, process.output
    errors = [line for line in process.lines if " ERROR " in line]
    assert len(errors) == 1 and text in errors[0], process.output


async def test_port_in_use_is_one_line_and_exit_1():
    first = await start_server("holder")
    try:
        second = await spawn(PORT=str(first.port))
        assert await second.wait() == 1
        assert_one_clear_error(second, f"Cannot listen on 127.0.0.1:{first.port}: address already in use")
    finally:
        assert await first.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
async def test_a_signal_while_waiting_for_the_database_ends_start_up_at_once(sig):
    # Nothing listens on the port: every ping fails after MONGODB_TIMEOUT_MS and start-up keeps waiting.
    process = await spawn(PORT="0", MONGODB_URI=f"mongodb://127.0.0.1:{free_port()}/", MONGODB_TIMEOUT_MS="200")

    await process.wait_for_line(re.compile("Waiting for the database"), "a 'Waiting for the database' line")
    process.signal(sig)
    assert await process.wait(limit=30) == 3  # far less than the 60 s it would wait for the database
    assert_one_clear_error(process, "Stopped by a signal during start-up")


@pytest.mark.parametrize(("overrides", "text"), [
    ({"JWT_SECRET": "short"}, "JWT_SECRET"),
    ({"CORS_ORIGINS": "*"}, "CORS_ORIGINS"),
    ({"STOP_GRACE_SECONDS": "20", "SHUTDOWN_TIMEOUT_SECONDS": "30"}, "STOP_GRACE_SECONDS (20) must be at least"),
    ({"ADMIN_USERNAME": "admin", "ADMIN_PASSWORD": "admin"}, "ADMIN_PASSWORD must be 8 to 128 characters"),
])
async def test_check_config_refuses_what_production_refuses(overrides, text):
    process = await spawn("--check-config", **{**PRODUCTION, **overrides})
    assert await process.wait() == 2
    assert "Traceback" not in process.output and text in process.output, process.output


async def test_check_config_accepts_a_valid_production_configuration():
    process = await spawn("--check-config", **PRODUCTION, STOP_GRACE_SECONDS="45")
    assert await process.wait() == 0, process.output
    assert "Settings are valid (production)" in process.output


@pytest.mark.parametrize(("username", "password", "text"), [
    ("admin", "admin", "ADMIN_PASSWORD must be 8 to 128 characters"),
    ("ops@cyberhub.example", "a long admin password", "ADMIN_USERNAME must be 3 to 32 of"),
])
async def test_an_admin_that_could_never_log_in_is_refused_in_development(username, password, text):
    """It used to be "created from settings" and then refused at every login."""
    process = await spawn(PORT="0", ADMIN_USERNAME=username, ADMIN_PASSWORD=password)
    assert await process.wait() == 2
    assert_one_clear_error(process, f"Invalid settings: {text}")
    assert "created" not in process.output and password not in process.output


async def test_a_blank_production_set_up_names_every_problem_on_one_line():
    """Malformed values too: PORT=abc used to hide every other problem until fixed."""
    process = await spawn("--check-config", ENVIRONMENT="production", PORT="abc")
    assert await process.wait() == 2
    assert_one_clear_error(process, "Invalid settings: PORT: Input should be a valid integer")
    line = next(line for line in process.lines if " ERROR " in line)
    for problem in ("production requires JWT_SECRET, PAYMENT_WEBHOOK_SECRET", "MONGODB_URI", "METRICS_TOKEN",
                    "CORS_ORIGINS"):
        assert problem in line, line
