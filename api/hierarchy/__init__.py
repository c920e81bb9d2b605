"""The organisation tree, role assignments, permission overrides and their resolution."""
