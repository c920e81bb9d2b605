"""Feature flags: the pure evaluation engine, its cache and loader, OFREP, the admin API."""
