"""msgspec Structs only: events, wire shapes of both APIs, mapping, settings."""
