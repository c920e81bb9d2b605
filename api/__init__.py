"""MarketEdge Platform API: identity, organisations and feature flags."""
