"""A local Spotler Mail+ (integrationservice REST API) over real HTTP, with a control API."""
