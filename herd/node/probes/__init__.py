"""Probes of the machine a node runs on, beyond CPU and memory: GPU (`gpu`), thermal state (`thermal`), battery
(`power`), the owner's own load (`owner`), a camera or microphone in use (`meeting`). Each module is a pure
parser over captured platform output; `herd.node.probes.sample` runs the readers in threads under a deadline
and folds what they found into a `herd.fleet.guest.GuestState` (a source that is absent stays `None`)."""
