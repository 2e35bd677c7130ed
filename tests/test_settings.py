"""Settings: the secret guard and empty values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from settings import Settings


def test_production_refuses_missing_secrets_and_wildcard_cors():
    with pytest.raises(ValidationError, match="JWT_SECRET, PAYMENT_WEBHOOK_SECRET"):
        Settings(_env_file=None, environment="production", cors_origins="https://cyberhub.example")
    with pytest.raises(ValidationError, match="CORS_ORIGINS"):
        Settings(_env_file=None, environment="production", jwt_secret="j" * 32, payment_webhook_secret="w" * 32)
    ok = Settings(_env_file=None, environment="production", jwt_secret="j" * 32, payment_webhook_secret="w" * 32,
                  cors_origins="https://a.example, https://b.example")
    assert ok.cors_origin_list == ["https://a.example", "https://b.example"]
    assert ok.generated_secrets == []


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
