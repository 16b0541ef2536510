"""Gateway service: validates submissions, owns the Redis work queue and strategy state."""
