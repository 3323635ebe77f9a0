"""Health findings over fleet state and recent requests (pure checks) for operators and the dashboard."""
