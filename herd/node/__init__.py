"""The node agent (`herd node`, and the router's local node): probes, heartbeats, drain."""
