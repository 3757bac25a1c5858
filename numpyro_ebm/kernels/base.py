"""Kernel interface shared by every fantasy-particle sampler.

A kernel is a pair of pure functions for one chain,

- ``init(rng_key, position, params) -> State`` and
- ``step(rng_key, state, params) -> (State, Info)``,

where ``position`` is a dict of the model's visible sites (one configuration,
no batch axis), ``params`` are the model's unconstrained parameters θ, and
``State`` is a NamedTuple whose ``position`` field is the current visible
configuration. θ is an argument of every step, so a kernel never samples from
parameters frozen at initialisation. Chains are an array axis: callers
``jax.vmap`` both functions over keys and states. Nothing here is jitted.

:class:`EnergyMCMCKernel` wraps such a pair as a ``numpyro.infer.MCMCKernel``,
so the same sampler runs under ``numpyro.infer.MCMC`` and converts to ArviZ.
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.infer.mcmc import MCMCKernel

from numpyro_ebm.models.energy import EnergyModel
from numpyro_ebm.models.sites import Site
from numpyro_ebm.types import Array, Configuration, Params, PRNGKey


class Kernel(NamedTuple):
    """A sampler as its pure functions.

    Attributes
    ----------
    init
        ``init(rng_key, position, params) -> State`` for one chain.
    step
        ``step(rng_key, state, params) -> (State, Info)`` for one chain.
    adapt
        Optional ``adapt(states, infos) -> states`` applied by the learner to
        the whole batch of chains after each update's sweeps (``infos`` are
        the last sweep's, with a leading chain axis). It lets a kernel tune
        settings shared by all chains, such as a step size controlled by the
        chains' mean acceptance rate.
    """

    init: Callable[[PRNGKey, Configuration, Params], Any]
    step: Callable[[PRNGKey, Any, Params], tuple[Any, Any]]
    adapt: Callable[[Any, Any], Any] | None = None


def check_inverse_temperature(value: Any) -> Any:
    """Reject a Python or NumPy inverse temperature that is negative or not finite.

    Traced values pass unchecked, so a factory can be vmapped over a ladder of β.
    """
    if isinstance(value, int | float | np.integer | np.floating) and not (
        np.isfinite(value) and value >= 0
    ):
        raise ValueError(
            f"`inverse_temperature` must be finite and non-negative; got {value!r}."
        )
    return value


def step_chains(
    kernel: Kernel,
    keys: PRNGKey,
    states: Any,
    params: Params,
    chain_batch_size: int | None = None,
) -> tuple[Any, Any]:
    """Advance a batch of chains one step each.

    With ``chain_batch_size=None`` all chains are one ``jax.vmap``. Otherwise the
    chains are processed ``chain_batch_size`` at a time by ``jax.lax.map``, which
    keeps the working set of a step in the CPU cache for large lattices. On a
    2-core CPU, 64 chains of a 128×128 Ising lattice ran at about 140 M spin
    updates per second vmapped and 220 M in groups of 8 (checkerboard heat bath,
    ``benchmarks/ising_checkerboard.py``).

    Examples
    --------
    >>> import jax
    >>> from numpyro_ebm.kernels import block_gibbs
    >>> from numpyro_ebm.models import BernoulliRBM
    >>> rbm = BernoulliRBM(4, 2)
    >>> kernel, params = block_gibbs(rbm), rbm.init_params()
    >>> keys = jax.random.split(jax.random.key(0), 6)
    >>> states = jax.vmap(kernel.init, (0, 0, None))(keys, {"v": jax.numpy.zeros((6, 4))}, params)
    >>> states, _ = step_chains(kernel, keys, states, params, chain_batch_size=2)
    >>> states.position["v"].shape
    (6, 4)
    """
    if chain_batch_size is None:
        return jax.vmap(kernel.step, in_axes=(0, 0, None))(keys, states, params)
    return jax.lax.map(
        lambda args: kernel.step(args[0], args[1], params),
        (keys, states),
        batch_size=chain_batch_size,
    )


def random_position(rng_key: PRNGKey, sites: tuple[Site, ...]) -> dict[str, Array]:
    """Draw one configuration uniformly from the domains of discrete ``sites``.

    Real-valued sites are drawn from a standard normal distribution.
    """
    keys = jax.random.split(rng_key, len(sites))
    position = {}
    for key, site in zip(keys, sites, strict=True):
        if site.domain is None:
            position[site.name] = jax.random.normal(key, site.shape)
        else:
            index = jax.random.randint(key, site.shape, 0, len(site.domain))
            position[site.name] = jnp.asarray(site.domain)[index]
    return position


def _site_model(sites: tuple[Site, ...]) -> Callable:
    """Return a NumPyro model that only declares ``sites``, for ArviZ's converter.

    ``arviz_base.from_numpyro`` traces the sampler's ``model`` to name the
    dimensions of each site; the energy itself is not needed for that.
    """

    def model(*args, **kwargs):
        # Real support for every site: ArviZ traces this model with
        # init_to_sample, and ImproperUniform has no sampler for discrete supports.
        for site in sites:
            numpyro.sample(
                site.name, dist.ImproperUniform(constraints.real, (), site.shape)
            )

    return model


class EnergyMCMCState(NamedTuple):
    """State of :class:`EnergyMCMCKernel`: the visible sites and the kernel state."""

    z: dict[str, Array]
    kernel_state: Any
    rng_key: PRNGKey


class EnergyMCMCKernel(MCMCKernel):
    """Run a kernel of this library under ``numpyro.infer.MCMC``.

    The parameters θ are the first positional argument of ``MCMC.run`` (or its
    ``params`` keyword), so they are an input of every transition::

        mcmc = MCMC(BlockGibbs(rbm), num_warmup=100, num_samples=500,
                    num_chains=8, chain_method="vectorized")
        mcmc.run(rng_key, params, init_params=initial_positions)

    ``init_params`` is the initial visible configuration (with a leading
    chain axis when ``num_chains > 1``); without it, each chain starts from a
    uniformly random configuration. The collected samples are the visible
    sites, keyed by their NumPyro site names.
    """

    sample_field = "z"

    def __init__(self, model: EnergyModel, kernel: Kernel):
        self.energy_model = model
        self.kernel = kernel
        self.model = _site_model(model.visible_sites)

    @staticmethod
    def _params(model_args: tuple, model_kwargs: Mapping | None) -> Params:
        if model_kwargs and "params" in model_kwargs:
            return model_kwargs["params"]
        if model_args:
            return model_args[0]
        raise ValueError(
            "missing parameters: pass θ to MCMC.run as its first argument after "
            "rng_key, or as the `params` keyword."
        )

    def init(self, rng_key, num_warmup, init_params, model_args, model_kwargs):
        """Start one chain, or a batch of chains when ``rng_key`` is a key array.

        ``MCMC`` with ``chain_method="vectorized"`` passes one key per chain and
        initial positions with a leading chain axis.
        """
        params = self._params(model_args, model_kwargs)
        if jnp.ndim(rng_key) > (0 if _is_typed_key(rng_key) else 1):
            return jax.vmap(
                self._init_one, in_axes=(0, 0 if init_params else None, None)
            )(rng_key, init_params, params)
        return self._init_one(rng_key, init_params, params)

    def _init_one(self, rng_key, init_params, params):
        key_position, key_init, rng_key = jax.random.split(rng_key, 3)
        sites = self.energy_model.visible_sites
        if init_params is None:
            position = random_position(key_position, sites)
        elif isinstance(init_params, Mapping):
            position = {s.name: jnp.asarray(init_params[s.name]) for s in sites}
        elif len(sites) == 1:
            position = {sites[0].name: jnp.asarray(init_params)}
        else:
            raise TypeError(
                "`init_params` must be a dict keyed by the visible site names "
                f"{[s.name for s in sites]}."
            )
        state = self.kernel.init(key_init, position, params)
        return EnergyMCMCState(state.position, state, rng_key)

    def sample(self, state, model_args, model_kwargs):
        """Advance the chain (or batch of chains) one step at the θ in the arguments."""
        params = self._params(model_args, model_kwargs)
        if jnp.ndim(state.rng_key) > (0 if _is_typed_key(state.rng_key) else 1):
            return jax.vmap(self._sample_one, in_axes=(0, None))(state, params)
        return self._sample_one(state, params)

    def _sample_one(self, state, params):
        rng_key, key_step = jax.random.split(state.rng_key)
        kernel_state, _ = self.kernel.step(key_step, state.kernel_state, params)
        return EnergyMCMCState(kernel_state.position, kernel_state, rng_key)

    def refresh(self, state, model_args, model_kwargs):
        """Return ``state``: the kernels cache nothing that depends on θ."""
        return state


def _is_typed_key(rng_key) -> bool:
    return jax.dtypes.issubdtype(rng_key.dtype, jax.dtypes.prng_key)
