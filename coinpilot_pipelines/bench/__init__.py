"""``coinpilot bench``: throughput measured beside a yardstick taken in the same run."""
