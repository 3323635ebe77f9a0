"""The web edge's rules as pure functions over values: which browser origins and Host names are let in, which
routes need an API key or the admin key, and how keys are parsed and compared. `herd.web.guard` applies them
to every request before any route runs; `keyfile` holds the one piece of I/O (re-reading the keys file)."""
