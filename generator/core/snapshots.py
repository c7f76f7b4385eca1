"""Snapshots of a generation state: host copies that outlive the donated live state.

Generators donate their state to the jitted step (the buffers are reused in place), so a
snapshot must be a real copy on the host; restoring puts a fresh copy back on the device, so
one snapshot can be restored any number of times (the official Magenta RT 2 engine's snapshots
work the same way).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def snapshot(state):
    """A host copy of ``state`` that survives the donation of the live one."""
    return jax.tree.map(lambda x: np.array(x, copy=True), state)


def restore(saved):
    """A device state from a snapshot (the snapshot stays usable for later restores)."""
    return jax.tree.map(jnp.asarray, saved)
