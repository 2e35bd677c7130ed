"""The README's instructions, run as a newcomer would: the set-up makes a
virtual environment before `pip install` (Debian refuses pip outside one),
and the walkthrough — real bash, curl and openssl against a real `python
run.py` with the settings the README gives — works, and works again."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil

from tests.support.process import ROOT, start_server

README = (ROOT / "README.md").read_text()


def bash_block_after(marker: str) -> str:
    start = README.index(marker)
    return re.search(r"```bash\n(.*?)```", README[start:], re.S).group(1)


def test_set_up_makes_and_activates_a_virtual_environment_before_pip():
    set_up = bash_block_after("## Two commands")
    lines = [line.strip() for line in set_up.splitlines() if line.strip()]
    assert lines[0] == "python3 -m venv .venv && . .venv/bin/activate", set_up
    assert lines[1] == "pip install -r requirements.txt", set_up


async def run_walkthrough(script: str, env_secret: str) -> list[dict]:
    proc = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", script,
        env={"PATH": os.environ["PATH"], "PAYMENT_WEBHOOK_SECRET": env_secret},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 0, text
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def test_walkthrough_runs_twice_against_a_fresh_server():
    for tool in ("bash", "curl", "openssl"):
        assert shutil.which(tool), f"{tool} is required (.ci/run installs it)"
    launch = bash_block_after("To try the whole")
    secret = re.search(r"export PAYMENT_WEBHOOK_SECRET=(\S+)", launch).group(1)
    admin = re.search(r"ADMIN_USERNAME=(\S+) ADMIN_PASSWORD='([^']+)' python run.py", launch)
    server = await start_server("walkthrough", PAYMENT_WEBHOOK_SECRET=secret,
                                ADMIN_USERNAME=admin.group(1), ADMIN_PASSWORD=admin.group(2))
    try:
        script = bash_block_after("then, in another shell").replace(
            "api=http://localhost:3000", f"api=http://127.0.0.1:{server.port}")
        assert f"127.0.0.1:{server.port}" in script
        for _ in range(2):
            paid, opened, inventory = await run_walkthrough(script, secret)
            assert paid == {"success": True, "duplicate": False}
            assert opened["success"] is True and opened["balance"] == 1000, opened
            assert [item["id"] for item in inventory["items"]] == [opened["item"]["id"]]
    finally:
        assert await server.stop() == 0


def commands(block: str) -> list[str]:
    """A bash block's command lines, comments and blank lines dropped."""
    lines = (line.split("#", 1)[0].strip() if " #" in line or line.startswith("#") else line.strip()
             for line in block.splitlines())
    return [line for line in lines if line]


def test_ci_does_exactly_the_readme_test_set_up():
    """`.ci/run` runs the README's own set-up lines (a virtual environment made
    and activated before any pip or python, then the dev requirements and the
    JS packages), lints, then the README's test command; no `python`/`pip`
    outside the environment (a stock Debian has neither command)."""
    readme = commands(bash_block_after("Tests — the whole suite"))
    venv, install, test = readme[1:]
    assert venv == "python3 -m venv .venv && . .venv/bin/activate", readme
    assert install == "pip install -r requirements-dev.txt && npm ci --prefix js", readme
    assert test == "python -m pytest", readme
    assert "`bash .ci/run` does exactly that set-up" in README

    ci = commands((ROOT / ".ci" / "run").read_text())
    order = [ci.index(venv), ci.index(install), ci.index("ruff check ."), ci.index(test)]
    assert order == sorted(order), ci
    before_venv = ci[: order[0]]
    assert not [line for line in before_venv if re.search(r"(^|[\s;&|(])(python|pip)\s", line)], before_venv
    # Debian packages only when missing, Python's venv module among them.
    assert any("import ensurepip, venv" in line and "python3-venv" in line for line in before_venv), ci
    assert all("apt_packages+=" in line for line in before_venv if line.startswith("command -v")), ci
