"""Events out: the link's domain events, recorded in a Redis outbox and published with kombu.

``schemas`` the events, ``outbox`` the Redis stream they wait in, ``emit``
the hooks in the actors and stores, ``publisher`` the process that drains the
outbox to the organisation's bus (``connector publish-events``). kombu is used
for that one job; the work queues stay Dramatiq's.
"""
