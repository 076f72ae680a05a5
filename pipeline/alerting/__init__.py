"""Alerting: detection rules, alert lifecycle, notification channels and the scheduler."""
