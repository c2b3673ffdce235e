"""Queue workers: the broker, the launcher, retries, dead letters, idempotency and limits.

Importing this package has no side effects; ``connector.workers.broker`` builds
the one global broker when it is imported.
"""
