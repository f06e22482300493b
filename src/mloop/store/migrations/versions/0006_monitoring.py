"""monitoring: monitoring windows, monitor settings, alert rules and alerts

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_windows",
        sa.Column("deployment", sa.String(length=250), nullable=False),
        sa.Column("window_ms", sa.BigInteger(), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.Column("partial", sa.Boolean(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("input_statistics", sa.LargeBinary(), nullable=True),
        sa.Column("feedback_seen", sa.BigInteger(), nullable=False),
        sa.Column("computed_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "deployment", "window_ms", "start_ms", name=op.f("pk_monitor_windows")
        ),
    )
    op.create_table(
        "monitor_configs",
        sa.Column("deployment", sa.String(length=250), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("last_update_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("deployment", name=op.f("pk_monitor_configs")),
    )
    op.create_table(
        "monitor_alert_rules",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("deployment", sa.String(length=250), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=250), nullable=False),
        sa.Column("creation_time", sa.BigInteger(), nullable=False),
        sa.Column("last_update_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_monitor_alert_rules")),
    )
    op.create_index(
        op.f("ix_monitor_alert_rules_deployment"),
        "monitor_alert_rules",
        ["deployment"],
        unique=False,
    )
    op.create_table(
        "monitor_alerts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=128), nullable=False),
        sa.Column("deployment", sa.String(length=250), nullable=False),
        sa.Column("metric", sa.String(length=250), nullable=False),
        sa.Column("op", sa.String(length=4), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("fired_ms", sa.BigInteger(), nullable=False),
        sa.Column("resolved_ms", sa.BigInteger(), nullable=True),
        sa.Column("window_start_ms", sa.BigInteger(), nullable=False),
        sa.Column("window_end_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_value", sa.Float(), nullable=False),
        sa.Column("last_window_end_ms", sa.BigInteger(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("deliveries", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_alerts")),
    )
    op.create_index(
        op.f("ix_monitor_alerts_rule_state"), "monitor_alerts", ["rule", "state"], unique=False
    )
    op.create_index(
        op.f("ix_monitor_alerts_deployment_fired_ms"),
        "monitor_alerts",
        ["deployment", "fired_ms"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_monitor_alerts_deployment_fired_ms"), table_name="monitor_alerts")
    op.drop_index(op.f("ix_monitor_alerts_rule_state"), table_name="monitor_alerts")
    op.drop_table("monitor_alerts")
    op.drop_index(op.f("ix_monitor_alert_rules_deployment"), table_name="monitor_alert_rules")
    op.drop_table("monitor_alert_rules")
    op.drop_table("monitor_configs")
    op.drop_table("monitor_windows")
