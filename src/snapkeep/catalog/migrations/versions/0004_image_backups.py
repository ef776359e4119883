"""image backups: a vault's image repository, a recovery point's image backup

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('backup_vaults') as batch:
        batch.add_column(sa.Column('image_repository', sa.JSON(), nullable=True))
    with op.batch_alter_table('recovery_points') as batch:
        batch.add_column(sa.Column('image_backup', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('recovery_points') as batch:
        batch.drop_column('image_backup')
    with op.batch_alter_table('backup_vaults') as batch:
        batch.drop_column('image_repository')
