"""Alerts: what is worth telling someone outside the UI, said once per change of state.

`observations` turns what the sensors saw (check evaluations, run failures, key states) into
observations of (kind, subject, state) and decides which changes deserve a message; `service`
stores the last state per (kind, subject) and sends the message. No Dagster here: the sensors in
`defs/alerts.py` read the instance and hand plain values in.
"""
