"""Portable SQL date arithmetic for the read models: SQLite spells it with date()/julianday(), others natively."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Date, Integer
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class add_days(FunctionElement[date]):  # noqa: N801 (reads as a SQL function)
    """date + n days: `date(d, n || ' days')` on SQLite, `d + n` on PostgreSQL and most others."""

    type = Date()
    inherit_cache = True
    name = "add_days"


@compiles(add_days)
def _add_days(element: add_days, compiler: Any, **kw: Any) -> str:
    day, days = list(element.clauses)
    return f"({compiler.process(day, **kw)} + {compiler.process(days, **kw)})"


@compiles(add_days, "sqlite")
def _add_days_sqlite(element: add_days, compiler: Any, **kw: Any) -> str:
    day, days = list(element.clauses)
    return f"date({compiler.process(day, **kw)}, ({compiler.process(days, **kw)}) || ' days')"


class days_between(FunctionElement[int]):  # noqa: N801 (reads as a SQL function)
    """Whole days from `earlier` to `later`: julianday difference on SQLite, date subtraction elsewhere."""

    type = Integer()
    inherit_cache = True
    name = "days_between"


@compiles(days_between)
def _days_between(element: days_between, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    return f"({compiler.process(later, **kw)} - {compiler.process(earlier, **kw)})"


@compiles(days_between, "sqlite")
def _days_between_sqlite(element: days_between, compiler: Any, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    later_sql, earlier_sql = compiler.process(later, **kw), compiler.process(earlier, **kw)
    return f"CAST(julianday({later_sql}) - julianday({earlier_sql}) AS INTEGER)"
