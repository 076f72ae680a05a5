"""timestep decay state

Adds the decayed running sums behind `timesteps.emotion_index` (emotion_index = decay_sum /
decay_weight at the bucket's end), so the next bucket continues from the stored state instead of
re-reading an entity's whole history. Existing rows get 0 (no state): nothing wrote timesteps
before this revision. The server default only fills those rows and is dropped afterwards, so
every writer must give the state explicitly, as the models say.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

DECAY_COLUMNS = ('decay_sum', 'decay_weight')


def upgrade() -> None:
    for name in DECAY_COLUMNS:
        op.add_column('timesteps', sa.Column(name, sa.Float(), server_default=sa.text('0'), nullable=False))
        op.alter_column('timesteps', name, server_default=None)


def downgrade() -> None:
    for name in reversed(DECAY_COLUMNS):
        op.drop_column('timesteps', name)
