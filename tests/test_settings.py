"""Settings: the secret guard and empty values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from settings import Settings

PRODUCTION = {"environment": "production", "jwt_secret": "j" * 32, "payment_webhook_secret": "w" * 32,
              "cors_origins": "https://a.example, https://b.example", "mongodb_uri": "mongodb://db:27017",
              "metrics_token": "m" * 32}


def test_production_refuses_missing_or_unsafe_settings():
    ok = Settings(_env_file=None, **PRODUCTION)
    assert ok.cors_origin_list == ["https://a.example", "https://b.example"] and ok.generated_secrets == []
    refusals = {
        "JWT_SECRET, PAYMENT_WEBHOOK_SECRET": {"jwt_secret": None, "payment_webhook_secret": None},
        "CORS_ORIGINS": {"cors_origins": "*"},
        "at least 32 characters": {"jwt_secret": "short"},
        "MONGODB_URI": {"mongodb_uri": None},
        "METRICS_TOKEN": {"metrics_token": None},
    }
    for message, change in refusals.items():
        with pytest.raises(ValidationError, match=message):
            Settings(_env_file=None, **{**PRODUCTION, **change})


def test_a_settings_error_never_prints_the_values():
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **{**PRODUCTION, "jwt_secret": "tiny-but-secret-value"})
    assert "tiny-but-secret-value" not in str(caught.value)
    assert "m" * 20 not in str(caught.value)


def test_development_generates_missing_secrets_and_says_which():
    first, second = Settings(_env_file=None), Settings(_env_file=None)
    assert first.generated_secrets == ["JWT_SECRET", "PAYMENT_WEBHOOK_SECRET"]
    assert len(first.jwt_key) >= 32 and first.jwt_key != second.jwt_key


def test_empty_values_mean_unset():
    s = Settings(_env_file=None, metrics_token="", redis_url="", mongodb_uri="", jwt_secret="")
    assert (s.metrics_token, s.redis_url, s.mongodb_uri) == (None, None, None)
    assert "JWT_SECRET" in s.generated_secrets
    with pytest.raises(ValidationError, match="must be set together"):
        Settings(_env_file=None, admin_username="", admin_password="secret-password")


def test_environment_variables_are_read(monkeypatch):
    monkeypatch.setenv("PORT", "4321")
    monkeypatch.setenv("CURRENCY", "EUR")
    monkeypatch.setenv("CORS_ORIGINS", "https://x.example")
    s = Settings(_env_file=None)
    assert (s.port, s.currency, s.cors_origin_list) == (4321, "EUR", ["https://x.example"])


def test_production_reports_every_problem_in_one_message():
    """A blank production set-up is refused once, naming everything to fix
    (it used to take four rounds: secrets, MONGODB_URI, METRICS_TOKEN, CORS_ORIGINS)."""
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, environment="production", admin_username="admin", admin_password="admin")
    assert caught.value.error_count() == 1
    message = caught.value.errors()[0]["msg"]
    for problem in ("JWT_SECRET, PAYMENT_WEBHOOK_SECRET", "MONGODB_URI", "METRICS_TOKEN", "CORS_ORIGINS",
                    "ADMIN_PASSWORD must be 8 to 128"):
        assert problem in message, message
    with pytest.raises(ValidationError) as weak:
        Settings(_env_file=None, **{**PRODUCTION, "jwt_secret": "short", "metrics_token": None})
    assert "JWT_SECRET must be at least 32" in str(weak.value) and "METRICS_TOKEN" in str(weak.value)


@pytest.mark.parametrize("environment", ["development", "production"])
@pytest.mark.parametrize(("username", "password", "problem"), [
    ("admin", "admin", "ADMIN_PASSWORD must be 8 to 128 characters"),
    ("ops@cyberhub.example", "a long admin password", "ADMIN_USERNAME must be 3 to 32 of"),
    ("ad", "a long admin password", "ADMIN_USERNAME must be 3 to 32 of"),
    ("admin", "p" * 129, "ADMIN_PASSWORD must be 8 to 128 characters"),
])
def test_the_configured_admin_must_pass_registration_rules(environment, username, password, problem):
    """An admin created from settings must be able to log in: its name and
    password follow registration's rules, in every environment."""
    base = PRODUCTION if environment == "production" else {}
    with pytest.raises(ValidationError, match=problem) as caught:
        Settings(_env_file=None, **{**base, "admin_username": username, "admin_password": password})
    assert password not in str(caught.value)
    ok = Settings(_env_file=None, **{**base, "admin_username": "Ops_Admin", "admin_password": "eight ch"})
    assert ok.admin_username == "Ops_Admin"
