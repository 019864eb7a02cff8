"""Hardware abstraction: what differs per device (crypto backends, network IO, platform glue)."""
