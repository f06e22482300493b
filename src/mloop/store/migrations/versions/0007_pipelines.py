"""pipelines: pipeline executions, step executions and the step cache

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 05:00:00
"""

from __future__ import annotations

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Placeholder: the tables arrive with the pipelines package."""


def downgrade() -> None:
    """Placeholder: the tables arrive with the pipelines package."""
