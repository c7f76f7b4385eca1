"""Optional generator backends that wrap third-party model packages.

Each backend lives in its own module and is imported only by :func:`generator.load` when a model
spec names it (``magenta:mrt2_small`` ...), so the daemon core never pays for, or breaks on, a
package it does not use. :mod:`generator.backends.magenta_assets` is the exception: it only
looks at files, so ``jamgen models`` can say what is installed without importing anything heavy.
"""
