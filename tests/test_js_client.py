"""The frontend's own client: the JavaScript suite in js/ (Node's test runner +
the pinned socket.io-client) against a real server started by this test.

The server runs in this process on this test's event loop; node runs as an
asyncio subprocess, so the server keeps serving while we wait for it.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import WEBHOOK_SECRET

JS_DIR = Path(__file__).resolve().parent.parent / "js"
NODE_LIMIT_SECONDS = 120.0  # upper bound per file; each takes about a second


@pytest.fixture
def settings_overrides() -> dict:
    return {"battle_round_seconds": 0}  # js/test/battles.test.js waits for every round


async def test_frontend_client_suite(live):
    node = shutil.which("node")
    assert node, "Node.js (>= 18.19, see js/package.json) is required for the frontend client tests"
    assert (JS_DIR / "node_modules" / "socket.io-client").is_dir(), (
        "js/node_modules is missing: run `npm ci --prefix js` (the locked socket.io-client) first"
    )
    env = {
        **os.environ,
        "BASE_URL": live.base_url,
        "ADMIN_TOKEN": await live.admin_token(),
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "NO_COLOR": "1",
    }
    # One node run per file, one after the other: `cases:updated` is a broadcast,
    # so a file must not mistake another file's broadcast for the one it caused.
    # (Per file rather than --test-concurrency, which Debian's Node 18 lacks.)
    files = sorted(p.relative_to(JS_DIR).as_posix() for p in (JS_DIR / "test").glob("*.test.js"))
    assert len(files) >= 4, files
    for name in files:
        text, code = await run_node(node, name, env)
        assert code == 0, f"node --test {name} failed (exit {code}):\n{text}"
        # The runner found and ran tests (an empty run also exits 0).
        assert re.search(r"^. pass [1-9]", text, re.M) and re.search(r"^. fail 0$", text, re.M), text


@pytest.mark.parametrize("settings_overrides", [{"socket_max_per_address": 2}])
async def test_frontend_client_is_refused_past_the_session_limit_and_retries(live):
    """js/limits/: how socket.io-client takes a refused handshake (SOCKET_MAX_PER_ADDRESS)."""
    node = shutil.which("node")
    assert node, "Node.js (>= 18.19, see js/package.json) is required for the frontend client tests"
    env = {**os.environ, "BASE_URL": live.base_url, "ADMIN_TOKEN": await live.admin_token(),
           "WEBHOOK_SECRET": WEBHOOK_SECRET, "NO_COLOR": "1"}
    text, code = await run_node(node, "limits/session-limit.test.js", env)
    assert code == 0, f"node --test limits/session-limit.test.js failed (exit {code}):\n{text}"
    assert re.search(r"^. pass [1-9]", text, re.M) and re.search(r"^. fail 0$", text, re.M), text


async def run_node(node: str, test_file: str, env: dict[str, str]) -> tuple[str, int]:
    proc = await asyncio.create_subprocess_exec(
        node, "--test", "--test-reporter=spec", test_file,
        cwd=JS_DIR, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), NODE_LIMIT_SECONDS)
    except TimeoutError:
        proc.kill()
        output, _ = await proc.communicate()
        raise AssertionError(f"node --test {test_file} did not finish in {NODE_LIMIT_SECONDS:.0f} s:\n"
                             f"{output.decode(errors='replace')}") from None
    assert proc.returncode is not None
    return output.decode(errors="replace"), proc.returncode
