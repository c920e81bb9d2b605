"""Cross-cutting code: configuration, logging, HTTP plumbing, the database. Imports no domain."""
