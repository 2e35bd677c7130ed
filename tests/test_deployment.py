"""The deployment files, checked as far as a machine without a Docker engine
can: `.env.example` documents exactly the settings the service reads, the
compose file has the shape docs/OPERATIONS.md describes, and the image's HEALTHCHECK
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
COMPOSE_ONLY = {"LB_PORT", "STOP_GRACE_SECONDS"}  # read by docker-compose (and config-check), not the server
BACKENDS = ("config-check", "backend", "backend-replica")
# What compose sets itself inside its project, whatever .env says.
FIXED_IN_COMPOSE = {"ENVIRONMENT", "HOST", "PORT", "MONGODB_URI"}


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def env_example_names() -> dict[str, int]:
    lines = (ROOT / ".env.example").read_text().splitlines()
    documented = {}
    for i, line in enumerate(lines):
        match = re.match(r"^(?:# )?([A-Z][A-Z0-9_]*)=", line)
        if match:
            documented[match.group(1)] = i
    return documented


def test_env_example_documents_every_setting_with_a_comment():
    lines = (ROOT / ".env.example").read_text().splitlines()
    documented = env_example_names()
    assert set(documented) == SETTING_NAMES | COMPOSE_ONLY
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
    assert backend["depends_on"] == {"mongo": {"condition": "service_healthy"},
                                     "config-check": {"condition": "service_completed_successfully"}}
    assert backend["ports"] == ["${PORT:-3000}:3000"]
    env = backend["environment"]
    assert env["ENVIRONMENT"] == "production"
    assert env["MONGODB_URI"] == "mongodb://mongo:27017/?replicaSet=rs0"
    for secret in ("JWT_SECRET", "PAYMENT_WEBHOOK_SECRET", "CORS_ORIGINS"):
        assert env[secret].startswith("${" + secret + ":?"), secret
    assert set(env) <= SETTING_NAMES | COMPOSE_ONLY

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


def test_every_setting_in_env_example_reaches_every_backend_container():
    """env_file passes every line of .env; `environment` may only override the
    names compose must fix itself, add the required-secret checks (same value
    as .env) and compose-only names — nothing else is dropped or replaced."""
    services = compose()["services"]
    names = set(env_example_names())
    compose_text = (ROOT / "docker-compose.yml").read_text()
    for name in BACKENDS:
        service = services[name]
        assert service["env_file"] == ".env", name
        env = service["environment"]
        for key, value in env.items():
            assert key in names, (name, key)
            passes_through = str(value).startswith("${" + key + ":")
            assert key in FIXED_IN_COMPOSE or passes_through or (name == "backend-replica" and key in (
                "REDIS_URL", "TRUST_PROXY_HEADERS")), (name, key, value)
    for variable in set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", compose_text)):
        assert variable in names, f"compose reads {variable}, which .env.example does not document"


def test_config_check_runs_the_server_validation_before_any_backend():
    services = compose()["services"]
    check = services["config-check"]
    assert check["command"] == ["python", "run.py", "--check-config"] and check["restart"] == "no"
    for name in ("backend", "backend-replica"):
        assert services[name]["depends_on"]["config-check"] == {"condition": "service_completed_successfully"}


def test_stop_grace_period_outlasts_the_shutdown_timeout():
    services = compose()["services"]
    grace = re.fullmatch(r"\$\{STOP_GRACE_SECONDS:-([0-9]+)\}s", services["backend"]["stop_grace_period"])
    assert grace, services["backend"]["stop_grace_period"]
    assert services["backend-replica"]["stop_grace_period"] == services["backend"]["stop_grace_period"]
    default_timeout = Settings.model_fields["shutdown_timeout_seconds"].default
    assert int(grace.group(1)) >= default_timeout + 15
    # Larger timeouts: config-check (tests/test_startup.py) refuses a grace that is too short.


def test_the_project_names_no_document_outside_itself():
    """README.md and docs/ document the project; no file points to documents
    that are not in the repository."""
    outside = re.compile(r"SPEC\.md|STACK-NOTES|ARCHITECTURE\.md|\.\./shared")
    skipped_dirs = {".git", "node_modules", "__pycache__", ".venv", ".ruff_cache", ".pytest_cache"}
    offenders = []
    for path in ROOT.rglob("*"):
        if not path.is_file() or skipped_dirs & set(path.relative_to(ROOT).parts) or path.stat().st_size > 2**20:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if path != Path(__file__) and outside.search(text):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, offenders
