"""What a browser or a probe reads directly: health checks and the home page."""
