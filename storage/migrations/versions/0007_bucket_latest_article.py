"""the latest article of each bucket

`buckets.latest_published_at`: the latest event time among the bucket's articles. A batch whose
articles about an entity all come after it (a live stream, in order) is added to the entity's
latest buckets without re-reading them (pipeline/series.py, "Appending"); before, every batch
re-read its entities' current buckets, and the market entity's current hour holds every article
of that hour.

Existing rows get NULL: they are recomputed, as before, the next time a batch touches them, and
carry the value from then on.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0007", "0006"
branch_labels = depends_on = None


def upgrade() -> None:
    op.add_column("buckets", sa.Column("latest_published_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("buckets", "latest_published_at")
