"""PostgreSQL side of finsent: models, engine (embedded default), migrations, idempotent writes, queries.

Knows nothing of Kafka or of the model; callers pass plain records in.
"""
