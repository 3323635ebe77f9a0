"""A deterministic fleet simulator for comparing routing policies in virtual time (see `herd.sim.run`)."""
