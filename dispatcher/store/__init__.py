"""The dispatcher's durable state: SQLite (embedded default) or PostgreSQL, one schema."""
