r"""Replay buffer: persistent chains that restart from noise now and then.

Du & Mordatch (2019) train neural energies with persistent Langevin chains
kept as a replay buffer of past samples, a small fraction of which restarts
from a noise distribution at every update. The restarts keep proposing new
regions, so modes that the persistent chains have drifted away from are found
again.

:func:`replay` wraps any kernel. Its ``adapt``, which the learner calls once
after each update's sweeps, first applies the wrapped kernel's ``adapt`` and
then marks each chain for a restart with probability ``restart_probability``.
A marked chain is re-initialised from a draw of ``init_fn`` at its next step,
where θ is known, so the restart happens at the start of the next update and
the chain then takes that update's sweeps like the others:

.. math::

    x_0^{(c)} ∼ \begin{cases} q_{noise} & \text{with probability } p, \\
        x_{K}^{(c)}\ \text{of the previous update} & \text{otherwise.} \end{cases}

The restarted chains are not stationary, so the fantasy particles are a
mixture of the model and of short runs from noise. This is the bias the
recipe accepts for neural energies; set ``restart_probability=0`` for plain
persistent chains.

References
----------
Du, Y. & Mordatch, I. (2019). Implicit generation and modeling with
energy-based models. NeurIPS 2019.
"""

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from numpyro_ebm.kernels.base import Kernel
from numpyro_ebm.types import Array, Configuration, Params, PRNGKey

# Fraction of chains restarted from noise per update by default.
DEFAULT_RESTART_PROBABILITY = 0.05


class ReplayState(NamedTuple):
    """State of one chain of the replay buffer.

    Attributes
    ----------
    position
        Visible configuration, the wrapped kernel's ``position``.
    inner
        State of the wrapped kernel.
    rng_key
        Key of the chain's restart draws, used in ``adapt`` (which receives no
        key) and at the restart.
    restart
        Whether the chain restarts from noise at its next step.
    restarted
        Whether the chain restarted since the last ``adapt``, so that the
        info of every sweep of an update reports it.
    """

    position: dict[str, Array]
    inner: Any
    rng_key: PRNGKey
    restart: Array
    restarted: Array


@functools.cache
def _replay_info_type(inner_type: type) -> type:
    """Return a NamedTuple type with the wrapped kernel's info fields and ``restarted``.

    The learner averages each info field over the chains, so the fields stay
    flat. The type is cached so that every trace builds the same pytree type.
    """
    fields = [(name, Any) for name in inner_type._fields] + [("restarted", Any)]
    info_type = NamedTuple(f"Replay{inner_type.__name__}", fields)
    info_type.inner_type = inner_type
    return info_type


def _noise_sampler(
    init_fn: Callable[[PRNGKey], Configuration] | dist.Distribution | dict,
) -> Callable[[PRNGKey], Configuration]:
    if isinstance(init_fn, dist.Distribution):
        raise TypeError(
            "`init_fn` is a distribution; pass a dict keyed by site name, such as "
            '{"x": dist.Uniform(-4.0, 4.0).expand([2]).to_event(1)}.'
        )
    if isinstance(init_fn, dict):
        distributions = dict(init_fn)

        def draw(rng_key):
            keys = jax.random.split(rng_key, len(distributions))
            return {
                name: d.sample(key)
                for key, (name, d) in zip(keys, distributions.items(), strict=True)
            }

        return draw
    if not callable(init_fn):
        raise TypeError(
            "`init_fn` must be a function rng_key -> {site: value} or a dict of "
            f"NumPyro distributions keyed by site name; got {type(init_fn).__name__}."
        )
    return init_fn


def replay(
    kernel: Kernel,
    init_fn: Callable[[PRNGKey], Configuration] | dict[str, dist.Distribution],
    restart_probability: float = DEFAULT_RESTART_PROBABILITY,
) -> Kernel:
    """Wrap ``kernel`` so that chains restart from noise with a probability per update.

    Parameters
    ----------
    kernel
        The kernel that moves the chains, for example
        :func:`~numpyro_ebm.kernels.langevin.langevin`.
    init_fn
        Noise distribution of one chain's visible configuration: a function
        ``init_fn(rng_key) -> {site: value}``, or a dict of NumPyro
        distributions keyed by site name whose samples have the site's shape.
    restart_probability
        Probability that a chain restarts at the next update, in [0, 1].

    Returns
    -------
    Kernel
        ``init``, ``step`` and ``adapt`` with :class:`ReplayState`; the info has
        the wrapped kernel's fields and ``restarted`` (whether the chain
        restarted since the last ``adapt``). Restarts are drawn in ``adapt``,
        which ``numpyro.infer.MCMC`` does not call.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpyro.distributions as dist
    >>> from numpyro_ebm.kernels.langevin import langevin
    >>> from numpyro_ebm.models import EnergyModel
    >>> model = EnergyModel.from_energy_fn(
    ...     lambda p, x: 0.5 * jnp.sum(x**2), {}, shape=2, domain=None)
    >>> noise = {"x": dist.Uniform(-3.0, 3.0).expand([2]).to_event(1)}
    >>> kernel = replay(langevin(model, step_size=0.1), noise, restart_probability=1.0)
    >>> keys = jax.random.split(jax.random.key(0), 4)
    >>> states = jax.vmap(kernel.init, (0, 0, None))(keys, {"x": jnp.zeros((4, 2))}, {})
    >>> states, infos = jax.vmap(kernel.step, (0, 0, None))(keys, states, {})
    >>> states = kernel.adapt(states, infos)
    >>> states.restart.tolist()
    [True, True, True, True]
    """
    if not (np.isscalar(restart_probability) and 0.0 <= restart_probability <= 1.0):
        raise ValueError(
            f"`restart_probability` must be in [0, 1]; got {restart_probability!r}."
        )
    draw_noise = _noise_sampler(init_fn)

    def init(rng_key: PRNGKey, position: Configuration, params: Params) -> ReplayState:
        key_inner, key_chain = jax.random.split(rng_key)
        inner = kernel.init(key_inner, position, params)
        no = jnp.zeros((), bool)
        return ReplayState(inner.position, inner, key_chain, no, no)

    def step(
        rng_key: PRNGKey, state: ReplayState, params: Params
    ) -> tuple[ReplayState, Any]:
        key_noise, key_init, key_step = jax.random.split(rng_key, 3)
        # Every chain computes the restarted state; a per-chain branch becomes a
        # select under jax.vmap anyway.
        restarted = kernel.init(key_init, draw_noise(key_noise), params)
        inner = jax.tree.map(
            lambda new, old: jnp.where(state.restart, new, old),
            restarted,
            state.inner,
        )
        inner, inner_info = kernel.step(key_step, inner, params)
        restarted = state.restarted | state.restart
        info = _replay_info_type(type(inner_info))(*inner_info, restarted)
        no = jnp.zeros((), bool)
        return ReplayState(inner.position, inner, state.rng_key, no, restarted), info

    def adapt(states: ReplayState, infos: Any) -> ReplayState:
        inner = states.inner
        if kernel.adapt is not None:
            inner_info = type(infos).inner_type(*infos[:-1])
            inner = kernel.adapt(inner, inner_info)
        keys = jax.vmap(jax.random.split)(states.rng_key)
        draws = jax.vmap(jax.random.uniform)(keys[:, 0])
        restart = draws < restart_probability
        restarted = jnp.zeros_like(states.restarted)
        return ReplayState(inner.position, inner, keys[:, 1], restart, restarted)

    return Kernel(init, step, adapt)
