"""The frontend's own client: the JavaScript suite in js/ (Node's test runner +
the pinned socket.io-client) against a real server started by this test.

The server runs in this process on this test's event loop; node runs as an
asyncio subprocess, so the server keeps serving while we wait for it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from tests.conftest import WEBHOOK_SECRET

JS_DIR = Path(__file__).resolve().parent.parent / "js"
NODE_LIMIT_SECONDS = 240.0  # upper bound; the suite takes a few seconds


async def test_frontend_client_suite(live):
    node = shutil.which("node")
    assert node, "Node.js (>= 20) is required for the frontend client tests"
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
    # One file at a time: `cases:updated` is a broadcast, so a file must not
    # mistake another file's broadcast for the one it caused.
    proc = await asyncio.create_subprocess_exec(
        node, "--test", "--test-reporter=spec", "--test-concurrency=1",
        cwd=JS_DIR, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), NODE_LIMIT_SECONDS)
    except TimeoutError:
        proc.kill()
        output, _ = await proc.communicate()
        raise AssertionError(f"node --test did not finish in {NODE_LIMIT_SECONDS:.0f} s:\n{output.decode()}") from None
    text = output.decode(errors="replace")
    assert proc.returncode == 0, f"node --test failed (exit {proc.returncode}):\n{text}"
    # The runner found and ran the suite (an empty run also exits 0).
    assert "# fail 0" in text or "ℹ fail 0" in text, text
    assert "ℹ tests 0" not in text, text
