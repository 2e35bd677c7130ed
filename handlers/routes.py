"""Every REST route, collected from each handlers module's `default_handlers`."""

from __future__ import annotations

from collections.abc import Callable

from handlers import admin, auth, battles, cases, chat, economy, fair, health, meta, payments, profile, stats, upgrades
from settings import Settings

MODULES = (health, auth, cases, economy, profile, fair, payments, stats, admin, upgrades, battles, chat, meta)


def all_routes() -> list[tuple]:
    return [route for module in MODULES for route in module.default_handlers]


def document_hooks() -> list[Callable[[dict, Settings], None]]:
    """Each module's optional `adjust_document(doc, settings)`: what the served
    OpenAPI document states for this deployment's settings."""
    return [module.adjust_document for module in MODULES if hasattr(module, "adjust_document")]
