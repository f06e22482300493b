"""evaluation: evaluations and blessings of model versions, named gates

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 05:00:00
"""

from __future__ import annotations

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Placeholder: the tables arrive with the evaluation package."""


def downgrade() -> None:
    """Placeholder: the tables arrive with the evaluation package."""
