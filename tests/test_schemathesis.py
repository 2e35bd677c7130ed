"""Schemathesis fuzzes every operation of GET /api/openapi.json against a live
server, anonymous and authenticated as a user and as an admin: no 5xx, no
status, content type or body that the document does not allow, and invalid
input is refused. The run is seeded, so it is reproducible."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from tests.test_economy import create_case, funded_user

# Every check schemathesis has, as the README's hand-run command uses.
CHECKS = "all"


async def run_schemathesis(base_url: str, *headers: str) -> tuple[int, str]:
    args = [sys.executable, "-m", "schemathesis.cli", "run", f"{base_url}/api/openapi.json",
            "--checks", CHECKS, "--max-examples", "20", "--seed", "20261121", "--workers", "1",
            "--generation-database", "none", "--no-color", "--phases", "examples,coverage,fuzzing",
            "--request-timeout", "10"]
    for header in headers:
        args += ["-H", header]
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT,
                                                env={**os.environ, "SCHEMATHESIS_HOOKS": ""})
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


@pytest.mark.parametrize("who", ["anonymous", "user", "admin"])
async def test_fuzz_every_operation(live, sample_case, who):
    await create_case(live, sample_case)
    headers: list[str] = []
    if who == "user":
        token, _ = await funded_user(live, "fuzzer", 100_000)
        headers = [f"Authorization: Bearer {token}"]
    elif who == "admin":
        headers = [f"Authorization: Bearer {await live.admin_token()}"]
    code, output = await run_schemathesis(live.base_url, *headers)
    assert code == 0, output[-6000:]
