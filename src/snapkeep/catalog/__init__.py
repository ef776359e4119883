"""The catalog: Snapkeep's source of truth, in SQLite by default or PostgreSQL by URL."""
