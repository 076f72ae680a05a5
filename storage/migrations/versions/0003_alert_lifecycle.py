"""alert lifecycle

Adds what the scheduler needs to resume an alert's lifecycle after a restart and to guard against
two schedulers: per-alert lifecycle state, a partial unique index allowing one firing alert per
fingerprint, the alert_events history, silences, how far detection has judged each width, and an
index on articles.ingested_at for the scheduler's idle check, and one on timesteps (width, bucket)
for detection's reads of every entity's recent buckets.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('alerts', sa.Column('last_bucket_start', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE alerts SET last_bucket_start = bucket_start")
    op.alter_column('alerts', 'last_bucket_start', nullable=False)
    op.add_column('alerts', sa.Column('quiet_buckets', sa.Integer(), server_default=sa.text('0'), nullable=False))
    op.add_column('alerts', sa.Column('silenced', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    op.alter_column('alerts', 'quiet_buckets', server_default=None)
    op.alter_column('alerts', 'silenced', server_default=None)
    op.create_index('uq_alerts_firing_fingerprint', 'alerts', ['fingerprint'], unique=True,
                    postgresql_where=sa.text("state = 'firing'"))
    op.create_table('alert_events',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('alert_id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('bucket_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('severity', sa.Text(), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_alert_events_alert_id_alerts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_events')),
    sa.UniqueConstraint('alert_id', 'kind', 'bucket_start', name=op.f('uq_alert_events_alert_id_kind_bucket_start'))
    )
    op.create_index(op.f('ix_alert_events_alert_id'), 'alert_events', ['alert_id'], unique=False)
    op.create_table('silences',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('entity_glob', sa.Text(), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_silences'))
    )
    op.create_index(op.f('ix_articles_ingested_at'), 'articles', ['ingested_at'], unique=False)
    op.create_index('ix_timesteps_width_seconds_bucket_start', 'timesteps', ['width_seconds', 'bucket_start'], unique=False)
    op.create_table('detection_progress',
    sa.Column('width_seconds', sa.Integer(), nullable=False),
    sa.Column('evaluated_through', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('width_seconds', name=op.f('pk_detection_progress'))
    )


def downgrade() -> None:
    op.drop_table('detection_progress')
    op.drop_index('ix_timesteps_width_seconds_bucket_start', table_name='timesteps')
    op.drop_index(op.f('ix_articles_ingested_at'), table_name='articles')
    op.drop_table('silences')
    op.drop_index(op.f('ix_alert_events_alert_id'), table_name='alert_events')
    op.drop_table('alert_events')
    op.drop_index('uq_alerts_firing_fingerprint', table_name='alerts')
    for name in ('silenced', 'quiet_buckets', 'last_bucket_start'):
        op.drop_column('alerts', name)
