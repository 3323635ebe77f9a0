"""Fleet state: heartbeats in, immutable snapshots out (see `registry`)."""
