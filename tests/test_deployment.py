"""The deployment files, checked as far as a machine without a Docker engine
can: `.env.example` documents exactly the settings the service reads, the
compose file has the shape SPEC.md asks for, and the image's HEALTHCHECK
command and MongoDB's replica-set health check are runnable code."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SETTING_NAMES = {name.upper() for name, field in Settings.model_fields.items() if not field.exclude}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_env_example_documents_every_setting_with_a_comment():
    lines = (ROOT / ".env.example").read_text().splitlines()
    documented = {}
    for i, line in enumerate(lines):
        match = re.match(r"^(?:# )?([A-Z][A-Z0-9_]*)=", line)
        if match:
            documented[match.group(1)] = i
    assert set(documented) == SETTING_NAMES
    setting_line = re.compile(r"^(?:# )?[A-Z][A-Z0-9_]*=")
    for name, i in documented.items():
        above = next(line for line in reversed(lines[:i]) if not setting_line.match(line))
        assert above.startswith("# "), f"{name} has no comment above it"


def test_compose_runs_mongodb_replica_set_and_backend_waiting_for_it():
    services = compose()["services"]
    mongo, backend = services["mongo"], services["backend"]
    assert mongo["image"].startswith("mongo:7")
    assert "--replSet" in mongo["command"] and "rs0" in mongo["command"]
    assert any(v.startswith("mongo-data:") for v in mongo["volumes"]) and "mongo-data" in compose()["volumes"]
    assert "rs.initiate" in mongo["healthcheck"]["test"][-1]

    assert backend["container_name"] == "cyberhub-backend"
    assert backend["depends_on"] == {"mongo": {"condition": "service_healthy"}}
    assert backend["ports"] == ["${PORT:-3000}:3000"]
    env = backend["environment"]
    assert env["ENVIRONMENT"] == "production"
    assert env["MONGODB_URI"] == "mongodb://mongo:27017/?replicaSet=rs0"
    for secret in ("JWT_SECRET", "PAYMENT_WEBHOOK_SECRET", "CORS_ORIGINS"):
        assert env[secret].startswith("${" + secret + ":?"), secret
    assert set(env) <= SETTING_NAMES

    scaled = services["backend-replica"]
    assert scaled["profiles"] == ["scale"] and scaled["deploy"]["replicas"] == 2
    assert scaled["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert services["redis"]["profiles"] == ["scale"] and services["lb"]["profiles"] == ["scale"]


def test_compose_mongodb_health_check_is_valid_javascript():
    node = shutil.which("node")
    assert node, "Node.js is required"
    script = compose()["services"]["mongo"]["healthcheck"]["test"][-1]
    check = f"new Function({json.dumps(script)})"  # parses without running (rs and db exist only in mongosh)
    assert subprocess.run([node, "-e", check], check=False).returncode == 0, script


def test_dockerfile_is_slim_non_root_with_a_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "pip install -r requirements.txt" in text
    assert re.search(r"^HEALTHCHECK ", text, re.M)
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored and ".git" in ignored and "tests" in ignored


async def test_dockerfile_healthcheck_command_passes_against_a_live_server(live):
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    command = json.loads(re.search(r"^HEALTHCHECK .*?CMD (\[.*\])$", text, re.M).group(1))
    assert command[0] == "python"
    port = live.base_url.rsplit(":", 1)[1]
    proc = await asyncio.create_subprocess_exec(sys.executable, *command[1:], env={**os.environ, "PORT": port})
    assert await asyncio.wait_for(proc.wait(), 30) == 0
    live.chaos.down = True  # database unreachable: /health answers 503 and the check fails
    proc = await asyncio.create_subprocess_exec(sys.executable, *command[1:], env={**os.environ, "PORT": port},
                                                stderr=asyncio.subprocess.DEVNULL)
    assert await asyncio.wait_for(proc.wait(), 30) != 0
