"""risk events and stories

What count-based alerting reads (README, "How detection works"):

- `article_scores.risk_score` and `risk_tags`: the risk-event lexicon's strongest match (0, 0.6 or
  1) and the adverse-event categories it matched (pipeline/scoring/risk_events.py).
- `article_entities.story_key`: the key of the story a headline tells (pipeline/stories.py), with
  an index that finds an earlier copy of the same story about the same entity at once.
- `timesteps.story_count`, `adverse_count` and `risk_count`: the bucket's distinct stories, its
  adverse ones (negative, or tagged with a risk event) and the risk-event ones among those (a
  lexicon match that names the event), a copy of a story seen in the previous day counting 0 and
  a burst from one source at one instant counting 1 in all.

Existing rows: scores get no risk (0, no tags); mentions no story key (each is its own story);
buckets their article count as stories and their negatively labelled articles as adverse, so
history judged before this revision keeps a meaning until the worker rewrites it.
`entity_timeseries` is re-created with the two new bucket columns, `recent_alerts` with the
count model's evidence (horizon, observed and expected stories, tail probability) beside the
z-score of alerts raised by the rules before it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

RECENT_ALERT_DAYS = 7
WIDTH_LABEL = (
    "CASE WHEN t.width_seconds % 86400 = 0 THEN (t.width_seconds / 86400)::text || 'd'"
    " WHEN t.width_seconds % 3600 = 0 THEN (t.width_seconds / 3600)::text || 'h'"
    " WHEN t.width_seconds % 60 = 0 THEN (t.width_seconds / 60)::text || 'm'"
    " ELSE t.width_seconds::text || 's' END"
)


def entity_timeseries(story_columns: bool) -> str:
    """The view of 0004, with the story columns or (downgrade) without them."""
    stories = "    t.story_count,\n    t.adverse_count,\n    t.risk_count,\n" if story_columns else ""
    return f"""
CREATE VIEW entity_timeseries AS
SELECT
    t.entity,
    t.width_seconds,
    {WIDTH_LABEL} AS width,
    t.bucket_start,
    t.bucket_start + t.width_seconds * interval '1 second' AS bucket_end,
    t.article_count,
    t.mean_p_negative,
    t.mean_p_neutral,
    t.mean_p_positive,
    t.negative_share,
    t.mean_sentiment,
    t.emotion_index,
{stories}    t.model_version,
    t.updated_at
FROM timesteps AS t
"""


def evidence_number(key: str, sql_type: str) -> str:
    """A number from the evidence JSON, or NULL: one odd row must not break every query on the view."""
    return (
        f"CASE WHEN jsonb_typeof(a.evidence -> '{key}') = 'number'"
        f" THEN (a.evidence ->> '{key}')::numeric::{sql_type} END"
    )


def recent_alerts(count_model: bool) -> str:
    """The view of 0004, with (or, downgrading, without) the count model's evidence columns."""
    count_columns = (
        f"    a.evidence ->> 'horizon' AS horizon,\n"
        f"    {evidence_number('observed', 'double precision')} AS observed_stories,\n"
        f"    {evidence_number('expected', 'double precision')} AS expected_stories,\n"
        f"    {evidence_number('tail_probability', 'double precision')} AS tail_probability,\n"
    ) if count_model else ""
    return f"""
CREATE VIEW recent_alerts AS
SELECT
    a.id,
    a.state,
    a.severity,
    a.entity,
    a.rule,
    a.width_seconds,
    {WIDTH_LABEL.replace('t.width_seconds', 'a.width_seconds')} AS width,
    a.bucket_start,
    a.bucket_start + a.width_seconds * interval '1 second' AS bucket_end,
    a.value,
    a.baseline,
{count_columns}    {evidence_number('z_score', 'double precision')} AS z_score,
    {evidence_number('article_count', 'integer')} AS article_count,
    a.evidence ->> 'metric' AS metric,
    a.evidence ->> 'baseline_source' AS baseline_source,
    a.fired_at,
    a.last_bucket_start + a.width_seconds * interval '1 second' AS last_seen_at,
    a.resolved_at,
    a.acked_at,
    a.acked_at IS NOT NULL AS acknowledged,
    a.silenced,
    a.dedup_key,
    a.evidence
FROM alerts AS a
WHERE a.state = 'firing'
   OR a.last_bucket_start + a.width_seconds * interval '1 second'
      >= least(now(), (SELECT max(published_at) FROM articles)) - interval '{RECENT_ALERT_DAYS} days'
"""


def upgrade() -> None:
    op.add_column('article_scores', sa.Column('risk_score', sa.Float(), server_default=sa.text('0'), nullable=False))
    op.add_column('article_scores', sa.Column('risk_tags', ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False))
    op.add_column('article_entities', sa.Column('story_key', sa.Text(), nullable=True))
    op.create_index('ix_article_entities_entity_story_key_published_at', 'article_entities',
                    ['entity', 'story_key', 'published_at'])
    op.add_column('timesteps', sa.Column('story_count', sa.Float(), server_default=sa.text('0'), nullable=False))
    op.add_column('timesteps', sa.Column('adverse_count', sa.Float(), server_default=sa.text('0'), nullable=False))
    op.add_column('timesteps', sa.Column('risk_count', sa.Float(), server_default=sa.text('0'), nullable=False))
    op.execute("UPDATE timesteps SET story_count = article_count, adverse_count = round(negative_share * article_count)")
    op.execute("DROP VIEW entity_timeseries")
    op.execute(entity_timeseries(story_columns=True))
    op.execute("DROP VIEW recent_alerts")
    op.execute(recent_alerts(count_model=True))


def downgrade() -> None:
    op.execute("DROP VIEW recent_alerts")
    op.execute(recent_alerts(count_model=False))
    op.execute("DROP VIEW entity_timeseries")
    op.execute(entity_timeseries(story_columns=False))
    op.drop_column('timesteps', 'risk_count')
    op.drop_column('timesteps', 'adverse_count')
    op.drop_column('timesteps', 'story_count')
    op.drop_index('ix_article_entities_entity_story_key_published_at', 'article_entities')
    op.drop_column('article_entities', 'story_key')
    op.drop_column('article_scores', 'risk_tags')
    op.drop_column('article_scores', 'risk_score')
