"""evaluation: evaluations and blessings of model versions, named gates

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("candidate", sa.Text(), nullable=False),
        sa.Column("candidate_digest", sa.String(length=64), nullable=False),
        sa.Column("candidate_model", sa.String(length=256), nullable=True),
        sa.Column("candidate_version", sa.Integer(), nullable=True),
        sa.Column("baseline", sa.Text(), nullable=True),
        sa.Column("baseline_digest", sa.String(length=64), nullable=True),
        sa.Column("data", sa.String(length=512), nullable=True),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("gate_name", sa.String(length=128), nullable=True),
        sa.Column("gate", sa.JSON(), nullable=True),
        sa.Column("blessed", sa.Boolean(), nullable=True),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=250), nullable=False),
        sa.Column("creation_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluations")),
    )
    op.create_index(
        op.f("ix_evaluations_candidate_digest_creation_time"),
        "evaluations",
        ["candidate_digest", "creation_time"],
        unique=False,
    )
    op.create_index(
        op.f("ix_evaluations_candidate_model_candidate_version"),
        "evaluations",
        ["candidate_model", "candidate_version"],
        unique=False,
    )
    op.create_table(
        "evaluation_gates",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=250), nullable=False),
        sa.Column("creation_time", sa.BigInteger(), nullable=False),
        sa.Column("last_update_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_evaluation_gates")),
    )
    op.create_table(
        "blessing_requirements",
        sa.Column("model_name", sa.String(length=256), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("gate_name", sa.String(length=128), nullable=True),
        sa.Column("updated_by", sa.String(length=250), nullable=False),
        sa.Column("last_update_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model_name", name=op.f("pk_blessing_requirements")),
    )


def downgrade() -> None:
    op.drop_table("blessing_requirements")
    op.drop_table("evaluation_gates")
    op.drop_index(
        op.f("ix_evaluations_candidate_model_candidate_version"), table_name="evaluations"
    )
    op.drop_index(op.f("ix_evaluations_candidate_digest_creation_time"), table_name="evaluations")
    op.drop_table("evaluations")
