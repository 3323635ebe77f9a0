"""The HTTP surface: Quart-Trio app factory, thin route modules per API, one error handler, the server."""
