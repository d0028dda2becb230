"""`python -m halo_emulator` flags: every quirk has one, a flag left out keeps the realistic default, and a bad value
is refused with a message instead of a traceback. (Serving itself: test_emulator_server.py.)"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from halo_emulator import EmulatorConfig
from halo_emulator.__main__ import parse_args


def _config(*argv: str) -> EmulatorConfig:
    config: EmulatorConfig = parse_args(list(argv)).config
    return config


def test_no_flags_give_the_realistic_defaults() -> None:
    assert _config() == EmulatorConfig()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--page-cap", "250"], {"page_size_cap": 250}),
        (["--record-count", "page"], {"record_count_is_page_length": True}),
        (["--record-count", "listing"], {"record_count_is_page_length": False}),
        (["--served-page-size", "200"], {"served_page_size": 200}),
        (["--ignore-paging"], {"ignore_paging": True}),
        (["--unsortable-order", "500"], {"unsortable_order_status": 500}),
        (["--unsortable-order", "400"], {"unsortable_order_status": 400}),
        (["--unsortable-order", "ignore"], {"unsortable_order_status": None}),
        (["--datesearch"], {"datesearch": True}),
        (["--no-datesearch"], {"datesearch": False}),
        (["--expired-token-status", "400"], {"expired_token_status": 400}),
        (["--retry-after"], {"retry_after_header": True}),
        (["--no-retry-after"], {"retry_after_header": False}),
        (["--timestamps", "z"], {"timestamp_form": "z"}),
        (["--timestamps", "zoneless"], {"timestamp_form": "zoneless"}),
        (["--no-currency-code-name"], {"currency_code_name": False}),
        (["--credit-share", "0"], {"credit_note_share": 0.0}),
        (["--credit-share", "0.1"], {"credit_note_share": 0.1}),
        (["--draft-share", "0"], {"draft_share": 0.0}),
        (["--no-deletions"], {"invoice_deletions": False}),
        (["--expired-active", "always"], {"expired_stays_active": True}),
        (["--expired-active", "never"], {"expired_stays_active": False}),
        (["--expired-active", "drawn"], {"expired_stays_active": None}),
    ],
)
def test_each_quirk_flag_sets_its_knob(argv: list[str], expected: dict[str, Any]) -> None:
    assert _config(*argv) == EmulatorConfig(**expected)


def test_the_tenant_flags_set_the_books_and_the_application() -> None:
    config = _config("--seed", "5", "--invoices", "500", "--customers", "20", "--agreements", "9", "--tenant", "acme",
                     "--require-tenant", "--scopes", "read:customers read:invoices", "--rate-limit", "off",
                     "--token-ttl", "60", "--start", "2026-01-02T03:00:00", "--activity", "3", "--latency-ms", "250")
    assert config == EmulatorConfig(
        seed=5, invoices=500, customers=20, agreements=9, tenant="acme", require_tenant=True,
        granted_scopes=("read:customers", "read:invoices"), rate_limit=None, token_ttl_s=60.0,
        start=datetime(2026, 1, 2, 3, tzinfo=UTC), activity=3.0, latency_s=0.25,
    )  # fmt: skip
    assert _config("--rate-limit", "100/60").rate_limit == (100, 60.0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--record-count", "sometimes"], "choose one of listing, page"),
        (["--unsortable-order", "404"], "choose one of ignore, 400, 500"),
        (["--expired-active", "maybe"], "choose one of drawn, always, never"),
        (["--timestamps", "local"], "invalid choice"),
        (["--credit-share", "0.7"], "credit_note_share must be between 0 and 0.5"),
        (["--draft-share", "2"], "a share between 0 and 1"),
        (["--served-page-size", "0"], "served_page_size must be positive"),
        (["--tenants", "3", "--tenant", "acme"], "--tenants needs a count"),
    ],
)
def test_a_bad_value_is_refused_with_a_message(argv: list[str], message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_help_names_every_quirk_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--page-cap", "--record-count", "--served-page-size", "--ignore-paging", "--unsortable-order",
                 "--datesearch", "--expired-token-status", "--retry-after", "--timestamps", "--currency-code-name",
                 "--credit-share", "--draft-share", "--deletions", "--expired-active"):
        assert flag in text
    assert "(default 100, as real tenants)" in text and "default 0.02" in text
