"""Notification channels: each sends one AlertNotice somewhere and says whether a failure is worth a retry.

`channel.py` holds the contract; one module per channel; `configured.py` builds the enabled ones
from the settings. The outbox (pipeline/alerting/outbox.py) decides when to call them.
"""
