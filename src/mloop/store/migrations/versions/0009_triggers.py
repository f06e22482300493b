"""triggers: retraining triggers and their firings

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "triggers",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("armed", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=250), nullable=False),
        sa.Column("creation_time", sa.BigInteger(), nullable=False),
        sa.Column("last_update_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_triggers")),
    )
    op.create_table(
        "trigger_firings",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("trigger", sa.String(length=128), nullable=False),
        sa.Column("event_key", sa.String(length=250), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("event", sa.JSON(), nullable=False),
        sa.Column("pipeline", sa.String(length=500), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("fired_ms", sa.BigInteger(), nullable=False),
        sa.Column("fired_by", sa.String(length=250), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("execution_id", sa.String(length=64), nullable=True),
        sa.Column("finished_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger_firings")),
        sa.UniqueConstraint(
            "trigger", "event_key", name=op.f("uq_trigger_firings_trigger_event_key")
        ),
    )
    op.create_index(
        op.f("ix_trigger_firings_trigger_fired_ms"),
        "trigger_firings",
        ["trigger", "fired_ms"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_trigger_firings_trigger_fired_ms"), table_name="trigger_firings")
    op.drop_table("trigger_firings")
    op.drop_table("triggers")
