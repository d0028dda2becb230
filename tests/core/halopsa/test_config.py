"""The client's own configuration, and the import boundaries that keep the client and the emulator standalone."""

from __future__ import annotations

import ast
from dataclasses import fields, replace
from pathlib import Path

from core.halopsa.config import REQUIRED_SCOPES, HaloConfig
from core.settings import PROJECT_ROOT, Settings, settings_from_mapping
from core.sync.connector import halo_config
from halo_emulator import EmulatorConfig


def _imported_modules(package: Path) -> dict[str, set[str]]:
    """{file: modules it imports (absolute names; relative imports resolved against the package)}."""
    found: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package.name if node.level else ""
                module = ".".join(part for part in (base, node.module or "") if part)
                names.add(module)
                names.update(f"{module}.{alias.name}" for alias in node.names)
        found[str(path.relative_to(PROJECT_ROOT))] = names
    return found


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_the_client_imports_neither_the_store_nor_the_app_settings() -> None:
    imports = _imported_modules(PROJECT_ROOT / "core" / "halopsa")
    assert imports, "no client modules found"
    offending = {
        path: sorted(m for m in names if _under(m, "core.store") or _under(m, "core.settings"))
        for path, names in imports.items()
    }
    assert {path: mods for path, mods in offending.items() if mods} == {}


def test_the_emulator_imports_nothing_from_core() -> None:
    imports = _imported_modules(PROJECT_ROOT / "halo_emulator")
    assert imports, "no emulator modules found"
    offending = {path: sorted(m for m in names if _under(m, "core")) for path, names in imports.items()}
    assert {path: mods for path, mods in offending.items() if mods} == {}


def test_the_emulator_grants_exactly_the_required_scopes_by_default() -> None:
    assert EmulatorConfig().granted_scopes == REQUIRED_SCOPES


def test_default_settings_give_the_default_client_config() -> None:
    assert halo_config(Settings()) == HaloConfig()
    assert halo_config(settings_from_mapping({})) == HaloConfig()


def test_every_client_field_is_taken_from_the_settings() -> None:
    changed = {
        "page_size": 250,
        "rate_limit_requests": 40,
        "rate_limit_window_s": 12.5,
        "http_timeout_s": 7.5,
        "max_attempts": 3,
        "backoff_cap_s": 9.0,
        "unpaid_payment_statuses": "0",
        "allow_local_domains": True,
        "max_page_bytes": 8 * 2**20,
        "request_deadline_s": 45.0,
        "longest_wait_s": 20.0,
    }
    assert set(changed) == {f.name for f in fields(HaloConfig)}, "a HaloConfig field has no test value here"
    assert all(changed[name] != getattr(HaloConfig(), name) for name in changed)
    assert halo_config(replace(Settings(), **changed)) == HaloConfig(**changed)
