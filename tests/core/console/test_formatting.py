from core.console import formatting


def test_counts_are_separated_in_thousands_and_plural_unless_one():
    assert [formatting.count(n, "page") for n in (0, 1, 2, 12_345)] == ["0 pages", "1 page", "2 pages", "12,345 pages"]
