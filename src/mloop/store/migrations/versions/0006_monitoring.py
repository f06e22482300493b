"""monitoring: monitoring windows, alert rules and alerts

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 05:00:00
"""

from __future__ import annotations

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Placeholder: the tables arrive with the monitoring package."""


def downgrade() -> None:
    """Placeholder: the tables arrive with the monitoring package."""
