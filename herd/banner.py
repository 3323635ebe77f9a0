"""What `herd run` and `herd node` print on the console when they are ready (pure text, no I/O).

`herd run` prints one block once it serves (`ready_block`, written by `herd.nursery.announce.Announcer`): where
to reach it on each LAN address, the dashboard, mDNS, the nodes it sees and the one line that adds a node
(`add_node_command`, the one place that line is built). `herd node` prints one line when it joins a router and
whenever the models it reports change (`joined_line`).
"""

from __future__ import annotations

from collections.abc import Sequence

WILDCARDS = ("0.0.0.0", "::", "")


def _port(url: str) -> str:
    return url.rsplit(":", 1)[1].rstrip("/")


def reachable_urls(bound: Sequence[str], host: str, lan: Sequence[str]) -> list[str]:
    """The router's URLs as clients should type them: each LAN address (plus loopback) instead of a wildcard
    bind address; a specific bind address stays as bound."""
    if host not in WILDCARDS or not bound:
        return list(bound)
    port = _port(bound[0])
    scheme = bound[0].split("://", 1)[0]
    addresses = [a for a in lan if not a.startswith("127.")] + ["127.0.0.1"]
    return [f"{scheme}://{a}:{port}" for a in dict.fromkeys(addresses)]


def add_node_command(router_url: str, *, token_file: str | None = None, tls: bool = False) -> str:
    """The one-line command that adds a node to this router (run beside the node's Ollama). With a fleet token
    it names where the token is (never the token itself: consoles end up in logs); with TLS, the CA to trust."""
    parts = [f"herd node --router-url {router_url}"]
    if token_file is not None:
        parts.append(
            f"--fleet-token <the token in {token_file}>" if token_file else "--fleet-token <the fleet token>"
        )
    if tls:
        parts.append("--ca-file <the router's certificate, if self-signed>")
    return " ".join(parts)


def ready_block(
    urls: Sequence[str],
    *,
    mdns: bool,
    nodes: Sequence[str],
    version: str,
    token_file: str | None = None,
    tls: bool = False,
) -> str:
    """The block `herd run` prints once it is ready."""
    main = urls[0]
    seen = f"{len(nodes)} ({', '.join(nodes)})" if nodes else "none yet (they join within one heartbeat)"
    lines = [
        f"herd {version} router is ready",
        f"  API         {main}   (Ollama clients: {main}, OpenAI clients: {main}/v1)",
        *(f"              {url}" for url in urls[1:]),
        f"  dashboard   {main}/dashboard",
        "  mDNS        " + ("on: nodes on this LAN find the router by themselves" if mdns else "off"),
        f"  nodes       {seen}",
        f"  add a node  {add_node_command(main, token_file=token_file, tls=tls)}",
    ]
    return "\n".join(lines)


def joined_line(node_id: str, router: str, models: Sequence[str]) -> str:
    """What `herd node` prints when it joins a router, and when the models it reports change."""
    listed = ", ".join(models) if models else "no models yet"
    return f"herd node {node_id}: joined the router at {router}, reporting {len(models)} model(s): {listed}"
