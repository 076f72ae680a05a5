"""Kafka side of finsent: the news message contract, the batch consumer, dead letters, replay."""
