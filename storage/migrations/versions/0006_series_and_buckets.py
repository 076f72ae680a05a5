"""one vocabulary: series of buckets

The table of per-entity buckets was `timesteps` and its view `entity_timeseries`, while the code,
the CLI and the README spoke of series and buckets. The table becomes `buckets` (its index and
primary key follow) and the view `entity_series`. The old names stay as plain views over the new
ones, so SQL written against them keeps reading the same rows (writes go to `buckets`).
"""

from __future__ import annotations

from alembic import op

revision, down_revision = "0006", "0005"
branch_labels = depends_on = None


def upgrade() -> None:
    op.rename_table('timesteps', 'buckets')
    op.execute("ALTER INDEX ix_timesteps_width_seconds_bucket_start RENAME TO ix_buckets_width_seconds_bucket_start")
    op.execute("ALTER TABLE buckets RENAME CONSTRAINT pk_timesteps TO pk_buckets")
    op.execute("ALTER VIEW entity_timeseries RENAME TO entity_series")
    op.execute("CREATE VIEW timesteps AS SELECT * FROM buckets")
    op.execute("CREATE VIEW entity_timeseries AS SELECT * FROM entity_series")


def downgrade() -> None:
    op.execute("DROP VIEW entity_timeseries")
    op.execute("DROP VIEW timesteps")
    op.execute("ALTER VIEW entity_series RENAME TO entity_timeseries")
    op.execute("ALTER TABLE buckets RENAME CONSTRAINT pk_buckets TO pk_timesteps")
    op.execute("ALTER INDEX ix_buckets_width_seconds_bucket_start RENAME TO ix_timesteps_width_seconds_bucket_start")
    op.rename_table('buckets', 'timesteps')
