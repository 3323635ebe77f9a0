"""How the router talks to nodes: the upstream interface and its lean HTTP/1.1 implementation."""
