"""Agreement subtypes by their HaloPSA id (reference 11: lookup ids differ per tenant and nothing maps 58 to subtypes,
so the names read until now may be some other table's).

- autopayrule.subtype_id: the rule's subtype, taken from the partner's synced agreements whose subtype had the rule's
  name; unique per partner instead of the name. A rule whose name named no subtype id, or several, keeps its row and
  its name, gets no id and matches nothing until its subtype is picked again on the Agreements page.
- subtypename: per partner and subtype id, the name from HaloPSA's lookup (the names agreements had until now are kept
  there, marked not verified; "Subtype N", the old stand-in for no name, is not a name) and a name set in the console.
- subtypelookup: which lookup names a partner's subtypes (none until someone sets it) and what its last check found.
- agreement.subtype_name goes: an agreement keeps only its subtype id.

Revision ID: 0007_subtype_ids
Revises: 0006_listing_methods
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_subtype_ids"
down_revision: str | None = "0006_listing_methods"
branch_labels: str | None = None
depends_on: str | None = None

agreement = sa.table("agreement", sa.column("partner_id", sa.Integer()), sa.column("subtype_id", sa.BigInteger()),
                     sa.column("subtype_name", sa.String()))
rule = sa.table("autopayrule", sa.column("partner_id", sa.Integer()), sa.column("subtype_id", sa.BigInteger()),
                sa.column("subtype_name", sa.String()))
names = sa.table("subtypename", sa.column("partner_id", sa.Integer()), sa.column("subtype_id", sa.BigInteger()),
                 sa.column("lookup_name", sa.String()), sa.column("lookup_verified", sa.Boolean()),
                 sa.column("override_name", sa.String()))


def _swap_rule_key(old: str, new: str, *, label_nullable: bool) -> None:
    """autopayrule: unique on (partner_id, `new`) instead of (partner_id, `old`), unnamed as tables.py has it."""
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":  # SQLite names no unique constraint: the table is rebuilt without the old one
        current = sa.Table("autopayrule", sa.MetaData(), autoload_with=bind)
        for constraint in [c for c in current.constraints if isinstance(c, sa.UniqueConstraint)
                           and [column.name for column in c.columns] == ["partner_id", old]]:
            current.constraints.discard(constraint)
        with op.batch_alter_table("autopayrule", copy_from=current, recreate="always",
                                  table_args=(sa.UniqueConstraint("partner_id", new),)) as batch:
            batch.alter_column("subtype_name", existing_type=sa.String(), nullable=label_nullable)
        return
    name = next(str(constraint["name"]) for constraint in sa.inspect(bind).get_unique_constraints("autopayrule")
                if constraint["column_names"] == ["partner_id", old])
    op.drop_constraint(name, "autopayrule", type_="unique")
    op.alter_column("autopayrule", "subtype_name", existing_type=sa.String(), nullable=label_nullable)
    op.create_unique_constraint(None, "autopayrule", ["partner_id", new])


def upgrade() -> None:
    op.create_table(
        "subtypelookup",
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("lookup_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("finding", sa.String(), nullable=False),
        sa.Column("checked_at", sa.DateTime(), nullable=True),
        sa.Column("set_by", sa.String(), nullable=False),
        sa.Column("set_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"]),
        sa.PrimaryKeyConstraint("partner_id"),
    )
    op.create_table(
        "subtypename",
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("subtype_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("lookup_name", sa.String(), nullable=True),
        sa.Column("lookup_verified", sa.Boolean(), nullable=False),
        sa.Column("override_name", sa.String(), nullable=True),
        sa.Column("override_by", sa.String(), nullable=True),
        sa.Column("override_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["partner_id"], ["partner.id"]),
        sa.PrimaryKeyConstraint("partner_id", "subtype_id"),
    )
    with op.batch_alter_table("autopayrule") as batch:
        batch.add_column(sa.Column("subtype_id", sa.BigInteger(), nullable=True))
    of_rule = (agreement.c.partner_id == rule.c.partner_id) & (agreement.c.subtype_name == rule.c.subtype_name)
    ids = sa.select(sa.func.count(agreement.c.subtype_id.distinct())).where(of_rule).scalar_subquery()
    op.execute(rule.update().where(ids == 1).values(
        subtype_id=sa.select(sa.func.min(agreement.c.subtype_id)).where(of_rule).scalar_subquery()))
    _swap_rule_key("subtype_name", "subtype_id", label_nullable=True)

    stand_in = sa.literal("Subtype ") + sa.cast(agreement.c.subtype_id, sa.String())
    named = (sa.select(agreement.c.partner_id, agreement.c.subtype_id, sa.func.min(agreement.c.subtype_name),
                       sa.false())
             .where(agreement.c.subtype_id.is_not(None), agreement.c.subtype_name.is_not(None),
                    agreement.c.subtype_name != stand_in)
             .group_by(agreement.c.partner_id, agreement.c.subtype_id)
             .having(sa.func.count(agreement.c.subtype_name.distinct()) == 1))
    op.execute(names.insert().from_select(["partner_id", "subtype_id", "lookup_name", "lookup_verified"], named))
    with op.batch_alter_table("agreement") as batch:
        batch.drop_column("subtype_name")


def downgrade() -> None:
    """Names go back onto agreements and rules ("Subtype N" where there is none). Two rules of one partner whose
    subtypes share a name cannot both exist in the old schema: the downgrade then stops on the unique constraint."""
    with op.batch_alter_table("agreement") as batch:
        batch.add_column(sa.Column("subtype_name", sa.String(), nullable=True))

    def name_of(partner_id: sa.ColumnElement[int], subtype_id: sa.ColumnElement[int]) -> sa.ColumnElement[str]:
        found = (sa.select(sa.func.coalesce(names.c.override_name, names.c.lookup_name))
                 .where(names.c.partner_id == partner_id, names.c.subtype_id == subtype_id).scalar_subquery())
        return sa.func.coalesce(found, sa.literal("Subtype ") + sa.cast(subtype_id, sa.String()))

    op.execute(agreement.update().where(agreement.c.subtype_id.is_not(None))
               .values(subtype_name=name_of(agreement.c.partner_id, agreement.c.subtype_id)))
    op.execute(rule.update().where(rule.c.subtype_id.is_not(None))
               .values(subtype_name=name_of(rule.c.partner_id, rule.c.subtype_id)))
    _swap_rule_key("subtype_id", "subtype_name", label_nullable=False)
    with op.batch_alter_table("autopayrule") as batch:
        batch.drop_column("subtype_id")
    op.drop_table("subtypename")
    op.drop_table("subtypelookup")
