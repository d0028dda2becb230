"""Builds the HaloPSA client for a stored connection: decrypts the secret, picks the sandbox transport for
`*.sandbox` domains, and wires the sync engine's wait callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, Protocol

from core.halopsa.app_domain import is_sandbox_domain
from core.halopsa.client import HaloClient
from core.halopsa.config import HaloConfig
from core.settings import Settings
from core.store.secrets import secret_box

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
) -> HaloClient:
    """A client for one HaloPSA instance; `*.sandbox` domains are answered by the built-in emulator."""
    if transport is None and is_sandbox_domain(app_domain):
        from core.demo import sandbox  # imported lazily: the emulator is only loaded when a sandbox is used

        transport = sandbox.transport_for(app_domain, settings)
    return HaloClient(
        base_url=app_domain, client_id=client_id, client_secret=client_secret, tenant=tenant,
        config=halo_config(settings), transport=transport, on_event=on_event,
    )


def stored_client_factory(settings: Settings, *, transport: Any = None) -> ClientFactory:
    """The factory the sync engine uses in production: credentials come from the stored, encrypted connection."""
    box = secret_box(settings)

    def factory(connection: Any, on_event: EventFn | None) -> HaloClient:
        return build_client(
            app_domain=connection.app_domain, client_id=connection.client_id,
            client_secret=box.decrypt(connection.client_secret_encrypted), tenant=connection.tenant,
            settings=settings, on_event=on_event, transport=transport,
        )

    return factory
