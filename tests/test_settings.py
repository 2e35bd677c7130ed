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
