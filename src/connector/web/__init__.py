"""The web process: /healthz, the status page, /status.json and /metrics."""
