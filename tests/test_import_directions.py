"""Import directions between the layers, read from the source with `ast` (nothing is imported).

Every `import x`, `from x import y` (y counts as x.y, so `from core.sync import engine` is core.sync.engine), relative
import (resolved against the file's package), import inside a function or an `if TYPE_CHECKING:` block, and
`importlib.import_module("x")` / `__import__("x")` with a literal name is an import of its module. A rule forbids a
module and everything below it (`core` covers `core.store.tables`, not `coreutils`) to the files under a folder.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# What the checker reads: the application's own modules (tests and benches may reach across layers).
SCANNED = ("app.py", "pages", "ui", "core", "halo_emulator")

# (where, forbidden, why): no file under `where` (a folder or file, relative to the root) may import `forbidden`.
RULES: list[tuple[str, str, str]] = [
    ("core", "streamlit", "core is UI-free: it runs in the CLI, the scheduler and tests without Streamlit"),
    ("pages", "sqlalchemy", "pages render; they read the database only through core.console read models"),
    ("pages", "sqlmodel", "pages render; they read the database only through core.console read models"),
    ("pages", "httpx", "pages never call HaloPSA; core.actions does, with retries, cooldowns and audit"),
    ("core/console", "core.sync.engine", "read models only read; running a sync belongs to core.sync and core.actions"),
    ("core/halopsa", "core.store", "the HaloPSA client knows the wire, not our database"),
    ("halo_emulator", "core", "the emulator stands in for HaloPSA and must not share code with the console it serves"),
]


@dataclass(frozen=True)
class Violation:
    path: str  # relative to the root, with forward slashes
    line: int
    statement: str
    module: str
    forbidden: str
    why: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: `{self.statement}` imports {self.module}, forbidden here ({self.why})"


def module_files(root: Path) -> list[Path]:
    """The .py files of the scanned locations under `root`, sorted."""
    files: list[Path] = []
    for name in SCANNED:
        location = root / name
        if location.is_file():
            files.append(location)
        elif location.is_dir():
            files.extend(p for p in location.rglob("*.py") if "__pycache__" not in p.parts)
    return sorted(files)


def _package_of(relative: Path) -> list[str]:
    """The package a file's relative imports resolve against: its folder (for an __init__.py, the package itself)."""
    return list(relative.parent.parts)


def _absolute(package: list[str], level: int, module: str | None) -> str:
    """`from <level dots><module> import …` in `package`, as an absolute module name."""
    up = level - 1
    base = package[: len(package) - up] if up <= len(package) else []  # beyond the top: Python raises when imported
    return ".".join([*base, *(module.split(".") if module else [])])


def imported_modules(source: str, relative: Path) -> list[tuple[int, str, str]]:
    """(line, module, statement) for every import in `source`, the file at `relative` (to the root)."""
    tree = ast.parse(source, filename=str(relative))
    package = _package_of(relative)
    found: list[tuple[int, str, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((node.lineno, alias.name, ast.unparse(node)))
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(package, node.level, node.module) if node.level else (node.module or "")
            statement = ast.unparse(node)
            if base:
                found.append((node.lineno, base, statement))
            for alias in node.names:
                if alias.name != "*":  # the name may be a submodule: `from core.sync import engine`
                    found.append((node.lineno, f"{base}.{alias.name}" if base else alias.name, statement))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            first = node.args[0]
            literal = first.value if isinstance(first, ast.Constant) else None
            if name in ("import_module", "__import__") and isinstance(literal, str) and not literal.startswith("."):
                found.append((node.lineno, literal, ast.unparse(node)))
    return found


def _under(path: str, where: str) -> bool:
    return path == where or path.startswith(where.rstrip("/") + "/")


def _is_or_below(module: str, forbidden: str) -> bool:
    return module == forbidden or module.startswith(forbidden + ".")


def check_import_directions(root: Path, rules: list[tuple[str, str, str]] = RULES) -> list[Violation]:
    """Every import under `root` that a rule forbids, one per (statement, rule), in file and line order."""
    violations: list[Violation] = []
    for file in module_files(root):
        relative = file.relative_to(root)
        path = relative.as_posix()
        applicable = [rule for rule in rules if _under(path, rule[0])]
        if not applicable:
            continue
        seen: set[tuple[int, str, str]] = set()
        for line, module, statement in sorted(imported_modules(file.read_text(encoding="utf-8"), relative)):
            for _, forbidden, why in applicable:
                if _is_or_below(module, forbidden) and (line, statement, forbidden) not in seen:
                    seen.add((line, statement, forbidden))
                    violations.append(Violation(path, line, statement, module, forbidden, why))
    return violations


# --- the real tree ------------------------------------------------------------------------------------------------


def test_the_real_tree_keeps_its_import_directions() -> None:
    violations = check_import_directions(ROOT)
    assert not violations, "forbidden imports:\n" + "\n".join(str(v) for v in violations)


def test_every_rule_points_at_something_that_exists() -> None:
    """A renamed folder or module must not turn a rule into one that silently checks nothing."""
    first_party = {Path(name).stem for name in SCANNED}
    for where, forbidden, _ in RULES:
        location = ROOT / where
        assert location.is_file() or any(location.rglob("*.py")), f"rule location {where!r} holds no module"
        assert any(_under(where, name) for name in SCANNED), f"rule location {where!r} is not scanned"
        if forbidden.split(".")[0] in first_party:
            target = ROOT.joinpath(*forbidden.split("."))
            assert target.is_dir() or target.with_suffix(".py").is_file(), f"forbidden module {forbidden!r} not found"


def test_the_checker_reads_the_real_tree() -> None:
    files = {f.relative_to(ROOT).as_posix() for f in module_files(ROOT)}
    for name in SCANNED:
        assert any(_under(f, name) for f in files), f"nothing scanned under {name!r}"
    # and it sees imports there: the sync engine uses the store
    engine = Path("core/sync/engine.py")
    engine_imports = imported_modules((ROOT / engine).read_text(encoding="utf-8"), engine)
    assert any(_is_or_below(module, "core.store") for _, module, _ in engine_imports)


# --- a test of the test: a tree of modules written for the purpose ------------------------------------------------

# path: (source, the forbidden module it must be reported for, the line it must be reported at)
BAD: dict[str, tuple[str, str, int]] = {
    "core/x.py": ("import streamlit as st\n", "streamlit", 1),
    "core/store/y.py": (
        "def later():\n    from streamlit import session_state\n    return session_state\n",
        "streamlit",
        2,
    ),
    "pages/p.py": ("import httpx\n", "httpx", 1),
    "pages/q.py": ("import streamlit as st\nfrom sqlalchemy import select\n", "sqlalchemy", 2),
    "pages/r.py": ("import sqlmodel.sql.expression\n", "sqlmodel", 1),
    "core/console/bad.py": ("from core.sync import engine\n", "core.sync.engine", 1),
    "core/console/bad_direct.py": ("from core.sync.engine import run_sync\n", "core.sync.engine", 1),
    "core/console/bad_plain.py": ("import core.sync.engine as sync_engine\n", "core.sync.engine", 1),
    "core/console/charts/bad_relative.py": ("from ...sync import engine\n", "core.sync.engine", 1),
    "core/console/bad_typing.py": (
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from core.sync.engine import SyncResult\n",
        "core.sync.engine",
        4,
    ),
    "core/console/bad_dynamic.py": (
        "import importlib\n\nengine = importlib.import_module('core.sync.engine')\n",
        "core.sync.engine",
        3,
    ),
    "core/halopsa/bad.py": ("from core.store import tables\n", "core.store", 1),
    "core/halopsa/bad_package.py": ("from core import store\n", "core.store", 1),
    "core/halopsa/bad_relative.py": ("from ..store.tables import Invoice\n", "core.store", 1),
    "halo_emulator/bad.py": ("import json\nfrom core.settings import Settings\n", "core", 2),
    "halo_emulator/bad_package.py": ("import core\n", "core", 1),
}

CLEAN = {
    "app.py": "import streamlit as st\nfrom core.access import Role\n",
    "pages/ok.py": "import streamlit as st\nfrom core.console import overview\nimport httpx_like\nimport sqlmodels\n",
    "ui/ok.py": "import streamlit as st\nimport httpx\nfrom sqlalchemy import select\n",
    "core/ok.py": "import httpx\nimport sqlmodel\nimport streamlit_free\n",
    "core/console/ok.py": "from core.sync import engine_stats, runs\nfrom core.store import engine\n",
    "core/console/ok_relative.py": "from . import charts\nfrom ..sync.runs import latest\n",
    "core/halopsa/ok.py": "import httpx\nfrom core.errors import HaloError\nfrom core.settings import Settings\n",
    "core/halopsa/ok_relative.py": "from .transport import Transport\nfrom .. import errors\n",
    "core/sync/engine.py": "from core.store import tables\nfrom core.halopsa.client import HaloClient\n",
    "halo_emulator/ok.py": "from halo_emulator import wire\nimport coreutils\nfrom .state import State\n",
}


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")


def test_a_clean_tree_has_no_violations(tmp_path: Path) -> None:
    _write(tmp_path, CLEAN)
    assert check_import_directions(tmp_path) == []


@pytest.mark.parametrize("relative", sorted(BAD))
def test_each_forbidden_import_is_reported_with_file_and_line(tmp_path: Path, relative: str) -> None:
    source, forbidden, line = BAD[relative]
    _write(tmp_path, {**CLEAN, relative: source})
    violations = check_import_directions(tmp_path)
    assert [(v.path, v.line, v.forbidden) for v in violations] == [(relative, line, forbidden)]
    message = str(violations[0])
    assert message.startswith(f"{relative}:{line}: `") and forbidden in message


def test_all_forbidden_imports_in_one_tree_are_all_reported(tmp_path: Path) -> None:
    _write(tmp_path, {**CLEAN, **{relative: source for relative, (source, _, _) in BAD.items()}})
    reported = sorted((v.path, v.line, v.forbidden) for v in check_import_directions(tmp_path))
    assert reported == sorted((relative, line, forbidden) for relative, (_, forbidden, line) in BAD.items())


def test_a_new_rule_is_one_row(tmp_path: Path) -> None:
    _write(tmp_path, {"ui/widget.py": "from core.store import engine\n"})
    assert check_import_directions(tmp_path) == []
    rules = [*RULES, ("ui", "core.store", "ui goes through core.console")]
    [violation] = check_import_directions(tmp_path, rules)
    assert (violation.path, violation.line, violation.module) == ("ui/widget.py", 1, "core.store")
