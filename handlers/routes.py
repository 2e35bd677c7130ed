"""Every REST route, collected from each handlers module's `default_handlers`."""

from __future__ import annotations

from handlers import admin, auth, battles, cases, chat, economy, fair, health, meta, payments, profile, stats, upgrades

MODULES = (health, auth, cases, economy, profile, fair, payments, stats, admin, upgrades, battles, chat, meta)


def all_routes() -> list[tuple]:
    return [route for module in MODULES for route in module.default_handlers]
