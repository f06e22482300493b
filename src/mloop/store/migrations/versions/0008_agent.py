"""agent: leader leases and rollouts

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 05:00:00
"""

from __future__ import annotations

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Placeholder: the tables arrive with the agent package."""


def downgrade() -> None:
    """Placeholder: the tables arrive with the agent package."""
