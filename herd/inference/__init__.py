"""The inference routes' logic, framework-free: each handler takes the router's services and one `Call` and
returns a `Reply`; `herd.web.fastpath` serves them below Quart (see `herd.inference.call`)."""
