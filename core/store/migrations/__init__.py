"""Alembic migrations of the console's database, shipped inside the package so `python -m core migrate` (and every
engine_for) finds them from any working directory. Run them through core.store.database, never by hand."""
