"""governance: vault policies, notifications, legal holds, region settings

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import snapkeep.catalog.tables

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('legal_holds',
    sa.Column('legal_hold_id', sa.String(length=64), nullable=False),
    sa.Column('arn', sa.String(length=2048), nullable=False),
    sa.Column('title', sa.String(length=256), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('idempotency_token', sa.String(length=255), nullable=True),
    sa.Column('recovery_point_selection', sa.JSON(), nullable=True),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('cancel_description', sa.Text(), nullable=True),
    sa.Column('cancellation_date', snapkeep.catalog.tables.UTCDateTime(), nullable=True),
    sa.Column('retain_record_until', snapkeep.catalog.tables.UTCDateTime(), nullable=True),
    sa.Column('creation_date', snapkeep.catalog.tables.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('legal_hold_id', name=op.f('pk_legal_holds')),
    sa.UniqueConstraint('arn', name=op.f('uq_legal_holds_arn')),
    sa.UniqueConstraint('idempotency_token', name=op.f('uq_legal_holds_idempotency_token'))
    )
    op.create_table('region_settings',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_region_settings'))
    )
    op.create_table('vault_events',
    sa.Column('event_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('backup_vault_name', sa.String(length=50), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('topic_arn', sa.String(length=2048), nullable=False),
    sa.Column('message', sa.JSON(), nullable=False),
    sa.Column('delivered_at', snapkeep.catalog.tables.UTCDateTime(), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('creation_date', snapkeep.catalog.tables.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_vault_events'))
    )
    with op.batch_alter_table('vault_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vault_events_delivered_at'), ['delivered_at'], unique=False)

    op.create_table('legal_hold_points',
    sa.Column('legal_hold_id', sa.String(length=64), nullable=False),
    sa.Column('recovery_point_arn', sa.String(length=2048), nullable=False),
    sa.ForeignKeyConstraint(['legal_hold_id'], ['legal_holds.legal_hold_id'], name=op.f('fk_legal_hold_points_legal_hold_id_legal_holds')),
    sa.PrimaryKeyConstraint('legal_hold_id', 'recovery_point_arn', name=op.f('pk_legal_hold_points'))
    )
    with op.batch_alter_table('legal_hold_points', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_legal_hold_points_recovery_point_arn'), ['recovery_point_arn'], unique=False)

    with op.batch_alter_table('backup_vaults', schema=None) as batch_op:
        batch_op.add_column(sa.Column('access_policy', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('notification_topic_arn', sa.String(length=2048), nullable=True))
        batch_op.add_column(sa.Column('notification_events', sa.JSON(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('backup_vaults', schema=None) as batch_op:
        batch_op.drop_column('notification_events')
        batch_op.drop_column('notification_topic_arn')
        batch_op.drop_column('access_policy')

    with op.batch_alter_table('legal_hold_points', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_legal_hold_points_recovery_point_arn'))

    op.drop_table('legal_hold_points')
    with op.batch_alter_table('vault_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vault_events_delivered_at'))

    op.drop_table('vault_events')
    op.drop_table('region_settings')
    op.drop_table('legal_holds')
