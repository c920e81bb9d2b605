"""Piccolo Admin at /admin/ for super-admins, reached only through the OIDC login."""
