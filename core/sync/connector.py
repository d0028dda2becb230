"""Builds the HaloPSA client for a stored connection: decrypts the secret, picks the sandbox transport for
`*.sandbox` domains, wires the sync engine's wait callback, and gives the client its tenant's budget shared through
the database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, Protocol

from sqlalchemy.engine import Engine

from core.halopsa.app_domain import is_sandbox_domain
from core.halopsa.client import HaloClient
from core.halopsa.config import HaloConfig
from core.halopsa.ratelimit import Budget
from core.settings import Settings
from core.store.secrets import secret_box
from core.sync.tenant_budget import TenantBudget

EventFn = Callable[[Any], None]


class ClientFactory(Protocol):
    def __call__(self, connection: Any, on_event: EventFn | None) -> HaloClient: ...


def halo_config(settings: Settings) -> HaloConfig:
    """The client's share of the app settings: every HaloConfig field, by name."""
    return HaloConfig(**{name.name: getattr(settings, name.name) for name in fields(HaloConfig)})


def build_client(
    *,
    app_domain: str,
    client_id: str,
    client_secret: str,
    tenant: str | None,
    settings: Settings,
    on_event: EventFn | None = None,
    transport: Any = None,
    budget_for: Callable[[str], Budget] | None = None,
) -> HaloClient:
    """A client for one HaloPSA instance; `*.sandbox` domains are answered by the built-in emulator."""
    if transport is None and is_sandbox_domain(app_domain):
        from core.demo import sandbox  # imported lazily: the emulator is only loaded when a sandbox is used

        transport = sandbox.transport_for(app_domain, settings)
    return HaloClient(
        base_url=app_domain, client_id=client_id, client_secret=client_secret, tenant=tenant,
        config=halo_config(settings), transport=transport, on_event=on_event, budget_for=budget_for,
    )


def shared_budgets(engine: Engine, settings: Settings) -> Callable[[str], Budget]:
    """Each tenant's budget, shared with every other process using this database."""
    def budget_for(key: str) -> Budget:
        return TenantBudget(engine, key=key, limit=settings.rate_limit_requests, window_s=settings.rate_limit_window_s)

    return budget_for


def stored_client_factory(settings: Settings, *, engine: Engine | None = None, transport: Any = None) -> ClientFactory:
    """The factory the sync engine uses in production: credentials come from the stored, encrypted connection. With
    the database's `engine` every tenant's rate budget is shared across processes (workers, the CLI); without it, only
    within this process (tests that drive one client)."""
    box = secret_box(settings)
    budget_for = shared_budgets(engine, settings) if engine is not None else None

    def factory(connection: Any, on_event: EventFn | None) -> HaloClient:
        return build_client(
            app_domain=connection.app_domain, client_id=connection.client_id,
            client_secret=box.decrypt(connection.client_secret_encrypted), tenant=connection.tenant,
            settings=settings, on_event=on_event, transport=transport, budget_for=budget_for,
        )

    return factory
