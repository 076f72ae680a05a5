"""Integration tests: the real Kafka-protocol broker and PostgreSQL the suite starts (tests/conftest.py), and finsent processes."""
