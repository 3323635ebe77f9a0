"""Routing: scoring, capacity, the holding queue, the proxy with retries and fallbacks, relays, duties."""
