"""The append-only audit trail as super-admins read it."""
