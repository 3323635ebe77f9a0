"""Observers of the router (the dashboard): they may drop frames, never slow a request."""
