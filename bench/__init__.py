"""Benchmarks and fakes: the router overhead bench (`proxy.py`), a fake Ollama node process
(`fake_node.py`) and Ollama's wire format as pure functions (`ollama_wire.py`) shared with the tests'
fake node."""
