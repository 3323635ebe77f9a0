"""Composition roots: each builds its components without I/O, then starts them in one nursery."""
