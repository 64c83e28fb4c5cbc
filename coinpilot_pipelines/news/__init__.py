"""News domain logic: article identity, dedup, per-source health and polling. No Dagster here."""
