"""Request -> Reply for the token endpoint and `/api/*` (reference sections 1-3 and 7).

Routing is case-insensitive. Every `/api` route except `AuthInfo` needs a bearer token; a missing scope is a 401,
as observed on a live tenant. POST bodies are arrays: no id creates, an id updates only the fields sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import httpx

from halo_emulator.auth import (
    IDENTITY_SCOPES,
    InvalidScope,
    TokenStore,
    allows,
    requested_scopes,
    token_refusal,
    token_segments,
)
from halo_emulator.config import EmulatorConfig
from halo_emulator.listing import (
    BadParam,
    Filters,
    Unsortable,
    client_filters,
    contract_filters,
    invoice_filters,
    list_payload,
    payment_filters,
    truthy,
)
from halo_emulator.names import CURRENCIES, OTHER_LOOKUPS, SUBTYPES
from halo_emulator.reply import Reply, json_reply
from halo_emulator.state import InvalidRecord, TenantState
from halo_emulator.table import Row, Table

Upsert = Callable[..., Row]


@dataclass(frozen=True)
class Resource:
    """One `/api/<name>` entity: its envelope key, scopes, filters, rows, and how a POST creates or updates it."""

    key: str
    read_scope: str
    edit_scope: str
    filters: Callable[[Mapping[str, str]], Filters]
    table: Table
    create: Upsert
    update: Upsert


def _resources(config: EmulatorConfig, s: TenantState) -> dict[str, Resource]:
    return {
        "client": Resource(
            "clients", "read:customers", "edit:customers", client_filters, s.clients, s.create_client, s.update_client
        ),
        "invoice": Resource(
            "invoices", "read:invoices", "edit:invoices", lambda params: invoice_filters(params, config), s.invoices,
            s.create_invoice,
            s.update_invoice,
        ),
        "clientcontract": Resource(
            "contracts", "read:contracts", "edit:contracts", contract_filters, s.contracts, s.create_contract,
            s.update_contract,
        ),
        "invoicepayment": Resource(
            config.payments_key, "read:invoices", "edit:invoices", payment_filters, s.payments, s.record_payment,
            s.update_payment,
        ),
    }  # fmt: skip


@dataclass
class Credentials:
    """The API application as configured in HaloPSA right now (tests rotate the secret or change permissions)."""

    client_id: str
    client_secret: str
    scopes: tuple[str, ...]


def _error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> Reply:
    return json_reply(status, {"error": error, "error_description": description}, headers)


def unknown_tenant(config: EmulatorConfig, tenant: str | None) -> Reply:
    """A token request for a tenant this address does not serve."""
    return _error(config.bad_credentials_status, "invalid_client", f"Unknown tenant '{tenant or ''}'")


def invalid_token(config: EmulatorConfig | None = None) -> Reply:
    """An `/api` request without a token this tenant issued (or with an expired one): 401, or the configured status."""
    status = config.expired_token_status if config is not None else 401
    body, headers = token_refusal(status)
    return json_reply(status, body, headers)


def _not_found(what: str) -> Reply:
    return json_reply(404, {"ClassName": "HaloNotFoundException", "Message": f"{what} not found"})


def _base_url(request: httpx.Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc.decode()}"


class Router:
    def __init__(
        self,
        config: EmulatorConfig,
        state: TenantState,
        tokens: TokenStore,
        credentials: Credentials,
        now_s: Callable[[], int],
    ) -> None:
        self.config = config
        self.state = state
        self.tokens = tokens
        self.credentials = credentials
        self._now_s = now_s
        self._resources = _resources(config, state)

    def route(self, request: httpx.Request) -> Reply:
        segments = [s.lower() for s in request.url.path.split("/") if s]
        if segments == token_segments(self.config.auth_path):
            return self._token(request) if request.method == "POST" else json_reply(405, None)
        if not segments or segments[0] != "api" or len(segments) < 2:
            return _not_found("Resource")
        params = {k.lower(): v for k, v in request.url.params.multi_items()}
        try:
            return self._api(request, segments[1], segments[2:], params)
        except BadParam as exc:
            return json_reply(400, {exc.name: str(exc)})
        except Unsortable as exc:  # as model binding (400) or the database (500) of a tenant that refuses the order
            if exc.status >= 500:
                return json_reply(exc.status, {"ClassName": "System.Data.SqlClient.SqlException", "Message": str(exc)})
            return json_reply(exc.status, {"order": str(exc)})

    # ---- /auth/token -----------------------------------------------------------------------------------------------

    def _token(self, request: httpx.Request) -> Reply:
        form = dict(parse_qsl(request.content.decode("utf-8", "replace"), keep_blank_values=True))
        config = self.config
        tenant = request.url.params.get("tenant")
        missing_tenant = tenant is None and config.require_tenant
        if config.tenant and (missing_tenant or (tenant is not None and tenant.lower() != config.tenant.lower())):
            return unknown_tenant(config, tenant)
        if form.get("grant_type") != "client_credentials":
            return _error(400, "unsupported_grant_type", "Only client_credentials is supported for this application")
        creds = self.credentials
        if form.get("client_id") != creds.client_id or form.get("client_secret") != creds.client_secret:
            return _error(config.bad_credentials_status, "invalid_client", "The client id or client secret is invalid")
        try:
            scopes = requested_scopes(form.get("scope", ""), creds.scopes)
        except InvalidScope as exc:
            return _error(400, "invalid_scope", str(exc))
        access_token, id_token = self.tokens.issue(creds.client_id, scopes, config.token_ttl_s)
        return json_reply(
            200,
            {
                "token_type": "Bearer",
                "access_token": access_token,
                "expires_in": int(config.token_ttl_s),
                "scope": " ".join(IDENTITY_SCOPES + scopes),
                "id_token": id_token,
            },
        )

    # ---- /api ----------------------------------------------------------------------------------------------------

    def _api(self, request: httpx.Request, name: str, rest: list[str], params: dict[str, str]) -> Reply:
        if name == "authinfo" and not rest:
            if not self.config.auth_info:
                return _not_found("Resource")
            auth_url = _base_url(request) + "/" + "/".join(token_segments(self.config.auth_path)[:-1])
            return json_reply(200, {"auth_url": auth_url, "tenant_id": self.config.tenant})
        scopes = self._scopes(request)
        if scopes is None:
            return invalid_token(self.config)
        if name == "lookup" and not rest:
            return self._lookup(params) if request.method == "GET" else json_reply(405, None)
        if name == "currency" and not rest:
            return self._currencies() if request.method == "GET" else json_reply(405, None)
        if name == "webhook":
            return self._guarded(scopes, "admin:webhooks") or self._webhook(request, rest)
        resource = self._resources.get(name)
        if resource is None or len(rest) > 1:
            return _not_found("Resource")
        if request.method == "GET":
            return self._guarded(scopes, resource.read_scope) or self._get(resource, rest, params)
        if request.method == "POST" and not rest:
            return self._guarded(scopes, resource.edit_scope) or self._post(resource, request)
        return json_reply(405, None)

    def _scopes(self, request: httpx.Request) -> frozenset[str] | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        grant = self.tokens.lookup(token.strip())
        return None if grant is None else grant.scopes

    @staticmethod
    def _guarded(scopes: frozenset[str], needed: str) -> Reply | None:
        if allows(scopes, needed):
            return None
        return _error(
            401,
            "insufficient_scope",
            f"This API application does not have the '{needed}' permission",
            {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed}"'},
        )

    def _get(self, resource: Resource, rest: list[str], params: Mapping[str, str]) -> Reply:
        table = resource.table
        if not rest:
            payload = list_payload(table, resource.key, resource.filters(params), params, self.config)
            return Reply(200, payload, row_text=table.row_text)
        row = table.get(_int_id(rest[0]))
        if row is None:
            return _not_found(f"{resource.key.rstrip('s').title()} {rest[0]}")
        wire_row = table.present(row)
        if resource.key == "invoices" and truthy(params.get("includedetails")):
            payments = self.state.payments
            wire_row = {**wire_row, "payments": [payments.present(p) for p in self._payments_of(row["id"])]}
        return json_reply(200, wire_row)

    def _payments_of(self, invoice_id: int) -> list[Row]:
        payments = self.state.payments

        def index() -> dict[int, list[Row]]:
            by_invoice: dict[int, list[Row]] = {}
            for payment in payments.rows.values():
                by_invoice.setdefault(payment["invoice_id"], []).append(payment)
            return by_invoice

        return payments.select("by-invoice", index).get(invoice_id, [])

    def _post(self, resource: Resource, request: httpx.Request) -> Reply:
        items = _array_body(request)
        if isinstance(items, Reply):
            return items
        now_s = self._now_s()
        saved: list[Row] = []
        created = False
        for index, item in enumerate(items):
            row_id = item.get("id")
            try:
                if row_id in (None, 0, "0", ""):
                    saved.append(resource.create(item, now_s))
                    created = True
                else:
                    saved.append(resource.update(_int_id(str(row_id)), item, now_s))
            except InvalidRecord as exc:
                return json_reply(400, {f"[{index}].{exc.field}": str(exc)})
        return self._saved([resource.table.present(row) for row in saved], created)

    def _saved(self, saved: list[Row], created: bool) -> Reply:
        single = len(saved) == 1 and self.config.single_object_post_reply
        return json_reply(201 if created else 200, saved[0] if single else saved)

    def _webhook(self, request: httpx.Request, rest: list[str]) -> Reply:
        webhooks = self.state.webhooks
        if len(rest) > 1:
            return _not_found("Resource")
        if request.method == "GET":
            if not rest:
                return json_reply(200, list(webhooks.rows.values()))
            row = webhooks.get(rest[0])
            return json_reply(200, row) if row else _not_found(f"Webhook {rest[0]}")
        if request.method == "DELETE" and rest:
            row = webhooks.delete(rest[0])
            return json_reply(200, row) if row else _not_found(f"Webhook {rest[0]}")
        if request.method == "POST" and not rest:
            items = _array_body(request)
            if isinstance(items, Reply):
                return items
            saved = []
            for index, item in enumerate(items):
                try:
                    saved.append(self.state.upsert_webhook(item))
                except InvalidRecord as exc:
                    return json_reply(400, {f"[{index}].{exc.field}": str(exc)})
            return self._saved(saved, any(item.get("id") in (None, "") for item in items))
        return json_reply(405, None)

    def _lookup(self, params: Mapping[str, str]) -> Reply:
        """The rows of lookup `lookupid` (none for an id the tenant does not have), each naming its `lookupid`: the
        agreement subtypes at the first of the tenant's lookup ids, its other tables at the rest. A tenant that ignores
        `lookupid` answers its first other table whatever is asked."""
        subtype_id, *other_ids = self.config.lookup_ids
        tables = {subtype_id: [(s.id, s.name) for s in SUBTYPES]}
        tables.update((number, list(table.values)) for number, table in zip(other_ids, OTHER_LOOKUPS, strict=True))
        asked = params.get("lookupid", "").strip()
        served = other_ids[0] if self.config.lookup_ignores_id else _int_id(asked)
        return json_reply(200, [{"id": row_id, "name": name, "lookupid": served}
                                for row_id, name in tables.get(served, [])])


    @staticmethod
    def _currencies() -> Reply:
        """The tenant's currencies (a bare array, SPEC `Currency`): an invoice's `currency_code` is one's `id`."""
        return json_reply(200, [{"id": c.code, "name": c.name, "symbol": c.symbol, "code": c.iso,
                                 "conversion_rate": c.rate} for c in CURRENCIES])


def _int_id(text: str) -> int:
    """A path or body id; anything that is not a whole number cannot match a record."""
    try:
        return int(text)
    except ValueError:
        return -1


def _array_body(request: httpx.Request) -> list[dict[str, Any]] | Reply:
    try:
        body = json.loads(request.content or b"null")
    except ValueError:
        return json_reply(400, {"body": "The request body is not valid JSON"})
    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
        return json_reply(400, {"body": "Expected a JSON array of objects"})
    return body
