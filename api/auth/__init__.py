"""Who is calling: OIDC login, server-side sessions, bearer tokens, CSRF, guards."""
