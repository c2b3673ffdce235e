"""A local, faithful simulator of AFAS Profit's REST API (CRM: organisations, persons, contacts)."""
