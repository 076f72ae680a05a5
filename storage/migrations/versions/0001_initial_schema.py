"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 14:24:48.048742
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('dedup_key', sa.Text(), nullable=False),
    sa.Column('fingerprint', sa.Text(), nullable=False),
    sa.Column('entity', sa.Text(), nullable=False),
    sa.Column('rule', sa.Text(), nullable=False),
    sa.Column('width_seconds', sa.Integer(), nullable=False),
    sa.Column('bucket_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('baseline', sa.Float(), nullable=False),
    sa.Column('severity', sa.Text(), nullable=False),
    sa.Column('state', sa.Text(), nullable=False),
    sa.Column('evidence', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('fired_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_notified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts')),
    sa.UniqueConstraint('dedup_key', name=op.f('uq_alerts_dedup_key'))
    )
    op.create_index(op.f('ix_alerts_entity'), 'alerts', ['entity'], unique=False)
    op.create_index(op.f('ix_alerts_fingerprint'), 'alerts', ['fingerprint'], unique=False)
    op.create_table('articles',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('headline', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('source', sa.Text(), nullable=True),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('lang', sa.Text(), nullable=True),
    sa.Column('ingested_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_articles'))
    )
    op.create_index(op.f('ix_articles_published_at'), 'articles', ['published_at'], unique=False)
    op.create_table('timesteps',
    sa.Column('entity', sa.Text(), nullable=False),
    sa.Column('width_seconds', sa.Integer(), nullable=False),
    sa.Column('bucket_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('model_version', sa.Text(), nullable=False),
    sa.Column('article_count', sa.Integer(), nullable=False),
    sa.Column('mean_p_negative', sa.Float(), nullable=False),
    sa.Column('mean_p_neutral', sa.Float(), nullable=False),
    sa.Column('mean_p_positive', sa.Float(), nullable=False),
    sa.Column('negative_share', sa.Float(), nullable=False),
    sa.Column('mean_sentiment', sa.Float(), nullable=False),
    sa.Column('emotion_index', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('entity', 'width_seconds', 'bucket_start', name=op.f('pk_timesteps'))
    )
    op.create_table('article_entities',
    sa.Column('article_id', sa.Text(), nullable=False),
    sa.Column('entity', sa.Text(), nullable=False),
    sa.Column('matched_by', sa.Text(), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['article_id'], ['articles.id'], name=op.f('fk_article_entities_article_id_articles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('article_id', 'entity', name=op.f('pk_article_entities'))
    )
    op.create_index('ix_article_entities_entity_published_at', 'article_entities', ['entity', 'published_at'], unique=False)
    op.create_table('article_scores',
    sa.Column('article_id', sa.Text(), nullable=False),
    sa.Column('model_version', sa.Text(), nullable=False),
    sa.Column('p_negative', sa.Float(), nullable=False),
    sa.Column('p_neutral', sa.Float(), nullable=False),
    sa.Column('p_positive', sa.Float(), nullable=False),
    sa.Column('sentiment', sa.Float(), nullable=False),
    sa.Column('label', sa.Text(), nullable=False),
    sa.Column('chunks', sa.Integer(), nullable=False),
    sa.Column('scored_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['article_id'], ['articles.id'], name=op.f('fk_article_scores_article_id_articles'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('article_id', 'model_version', name=op.f('pk_article_scores'))
    )
    op.create_table('deliveries',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('alert_id', sa.BigInteger(), nullable=False),
    sa.Column('channel', sa.Text(), nullable=False),
    sa.Column('event', sa.Text(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_deliveries_alert_id_alerts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deliveries')),
    sa.UniqueConstraint('alert_id', 'channel', 'event', name=op.f('uq_deliveries_alert_id_channel_event'))
    )
    op.create_index('ix_deliveries_status_next_attempt_at', 'deliveries', ['status', 'next_attempt_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_deliveries_status_next_attempt_at', table_name='deliveries')
    op.drop_table('deliveries')
    op.drop_table('article_scores')
    op.drop_index('ix_article_entities_entity_published_at', table_name='article_entities')
    op.drop_table('article_entities')
    op.drop_table('timesteps')
    op.drop_index(op.f('ix_articles_published_at'), table_name='articles')
    op.drop_table('articles')
    op.drop_index(op.f('ix_alerts_fingerprint'), table_name='alerts')
    op.drop_index(op.f('ix_alerts_entity'), table_name='alerts')
    op.drop_table('alerts')
