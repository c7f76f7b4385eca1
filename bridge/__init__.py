"""jamgen's bridge: the daemon that streams a generator into JACK, and the control surfaces."""
