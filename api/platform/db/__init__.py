"""The database: engine and raw SQL, readiness, change notices, audit plumbing."""
