"""Unit tests: pure cores, parsers, contracts and the model, without the broker or PostgreSQL."""
