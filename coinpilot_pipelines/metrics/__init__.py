"""Prometheus metrics, computed from the application database on each scrape (`coinpilot metrics`).

`catalogue` names every metric with its help and labels (what the alert rules in
docker/prometheus/alerts.yml may refer to); `collector` computes them.
"""
