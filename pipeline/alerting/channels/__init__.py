"""Notification channels: each sends one AlertNotice somewhere and says whether a failure is worth a retry.

`channel.py` holds the contract; one module per channel; the scheduler (pipeline/alerting/scheduler.py,
the composition root of the alerting side) builds the enabled ones from the settings. The outbox
(pipeline/alerting/outbox.py) decides when to call them.
"""
