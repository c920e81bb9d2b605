"""Entry points run by operators and the platform: serve, release, dev, demo."""
