"""HTTP plumbing every route shares: errors, strict bodies, limits, headers, ids, OpenAPI."""
