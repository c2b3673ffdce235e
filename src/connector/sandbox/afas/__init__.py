"""A local, faithful simulator of AFAS Profit's REST API (CRM: organisations, persons, contacts).

Faithful in cost too: a GetConnector page waits for its skip, as AFAS is slow
at deep skips ("generally no longer acceptable" above about 100,000 rows, in
AFAS's GetConnector documentation); see ``skip_cost``.
"""
