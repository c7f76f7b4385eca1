"""jamgen's own streaming engine for Magenta RealTime 2, loaded from the official checkpoints.

Module map: ``config`` (shapes), ``layers`` (attention/FFN steps with ring-buffer caches), ``lm`` (the
language model and sampler), ``weights`` (official tensor names, checked loading), ``engine`` (the
compiled block of frames), ``system`` (``--model mrt2:small|base``), ``parity`` (the comparison
against the ``magenta-rt`` package).
"""
