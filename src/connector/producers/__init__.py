"""Pollers that read one system and publish typed change events for the other."""
