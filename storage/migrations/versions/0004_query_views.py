"""query views

Two read-only views for people who query the database with SQL directly (README, "Querying the
scores"), so that they need not know how widths, bucket ends and alert evidence are stored:

- `entity_timeseries`: every stored timestep with a readable width label ('5m', '1h': the largest
  of d/h/m that divides the width, else seconds, as `pipeline.tabular.width_label` writes it) and
  its bucket_end. Like the table, it holds only buckets with articles.
- `recent_alerts`: alerts firing now, and alerts last seen (end of the last bucket judged) within
  the 7 days before the newest article's event time, capped at now(): the watermark detection uses,
  so a replayed or demo database still shows its alerts. z_score, article_count, metric and
  baseline_source come out of the evidence JSON (NULL where the evidence lacks a number).

Views carry no order; ORDER BY in the query. A later migration that changes a column these views
read must drop and re-create them (PostgreSQL refuses to alter a column a view depends on).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 18:00:00
"""

from __future__ import annotations

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

RECENT_ALERT_DAYS = 7


def width_label(column: str) -> str:
    return (
        f"CASE WHEN {column} % 86400 = 0 THEN ({column} / 86400)::text || 'd'"
        f" WHEN {column} % 3600 = 0 THEN ({column} / 3600)::text || 'h'"
        f" WHEN {column} % 60 = 0 THEN ({column} / 60)::text || 'm'"
        f" ELSE {column}::text || 's' END"
    )


def evidence_number(key: str, sql_type: str) -> str:
    """A number from the evidence JSON, or NULL: one odd row must not break every query on the view."""
    return (
        f"CASE WHEN jsonb_typeof(a.evidence -> '{key}') = 'number'"
        f" THEN (a.evidence ->> '{key}')::numeric::{sql_type} END"
    )


ENTITY_TIMESERIES = f"""
CREATE VIEW entity_timeseries AS
SELECT
    t.entity,
    t.width_seconds,
    {width_label('t.width_seconds')} AS width,
    t.bucket_start,
    t.bucket_start + t.width_seconds * interval '1 second' AS bucket_end,
    t.article_count,
    t.mean_p_negative,
    t.mean_p_neutral,
    t.mean_p_positive,
    t.negative_share,
    t.mean_sentiment,
    t.emotion_index,
    t.model_version,
    t.updated_at
FROM timesteps AS t
"""

RECENT_ALERTS = f"""
CREATE VIEW recent_alerts AS
SELECT
    a.id,
    a.state,
    a.severity,
    a.entity,
    a.rule,
    a.width_seconds,
    {width_label('a.width_seconds')} AS width,
    a.bucket_start,
    a.bucket_start + a.width_seconds * interval '1 second' AS bucket_end,
    a.value,
    a.baseline,
    {evidence_number('z_score', 'double precision')} AS z_score,
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
    op.execute(ENTITY_TIMESERIES)
    op.execute(RECENT_ALERTS)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS recent_alerts")
    op.execute("DROP VIEW IF EXISTS entity_timeseries")
