"""Support constraints that NumPyro lacks: ±1 spins."""

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import constraints

from numpyro_ebm.models.sites import SPIN


class _Spin(constraints.ParameterFreeConstraint):
    """The two spin values −1 and +1."""

    is_discrete = True
    event_dim = 0
    # The per-element domain, as a Site records it; EnergyModel.from_numpyro reads it.
    domain = SPIN

    def __call__(self, x):
        xp = jnp if isinstance(x, jax.Array) else np
        return xp.equal(x, -1) | xp.equal(x, 1)

    def feasible_like(self, prototype):
        return jnp.ones_like(prototype)


spin = _Spin()
"""NumPyro support constraint of a ±1 spin, for ``dist.ImproperUniform(spin, ...)``."""
