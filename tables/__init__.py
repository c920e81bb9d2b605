"""Piccolo table classes: the single source of the database schema (PRODUCT §3)."""
