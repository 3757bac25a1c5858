r"""Parallel tempering (replica exchange) over any kernel of this library.

K replicas run the same inner kernel at the inverse temperatures
β_1 < … < β_K = 1 of a ladder, so the hot replicas cross energy barriers that
trap a chain at β = 1. One step advances every replica by one inner step.
It then proposes to exchange the states of neighbouring replicas k and k + 1,
for even k on even steps and for odd k on odd steps, so the proposed pairs are
disjoint. An exchange is accepted with probability

.. math::

    \min\Big(1, \exp\big((β_k − β_{k+1})(E(x_k) − E(x_{k+1}))\big)\Big),

which keeps the product of the tempered distributions ∏_k exp(−β_k E(x_k))
invariant. The replica at β = 1 then samples the model.

The energy E in the exchange must be the energy whose tempered density
exp(−β E) the inner kernel targets on the whole state it carries. A kernel
that samples latent sites tempers the joint energy E(v, h), and the tempered
marginal of v is not exp(−β F(v)) with the free energy F, so exchanging with
F would be wrong. The default ``state_energy`` therefore uses

- ``model.joint_energy`` of ``state.position`` and ``state.latent`` when the
  state has a ``latent`` field (single-site Gibbs),
- ``model.joint_energy`` of ``state.position`` and ``state.hidden`` when the
  state has a ``hidden`` field and the model one latent site (block Gibbs on
  an RBM),
- ``model.energy`` of ``state.position`` otherwise, which is the free energy
  for a kernel that tempers the visible marginal, such as
  Gibbs-with-Gradients.

Pass ``state_energy(params, state) -> scalar`` for other kernels.

References
----------
Geyer, C. J. (1991). Markov chain Monte Carlo maximum likelihood. Computing
Science and Statistics: Proceedings of the 23rd Symposium on the Interface.
Hukushima, K. and Nemoto, K. (1996). Exchange Monte Carlo method and
application to spin glass simulations. Journal of the Physical Society of
Japan 65(6).
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_ebm.kernels.base import EnergyMCMCKernel, Kernel
from numpyro_ebm.models.energy import EnergyModel
from numpyro_ebm.types import Array, ArrayLike, Configuration, Params, PRNGKey

# A ladder computed in float32 can end a few float32 steps (1.2e-7 each) away
# from 1, so a last value this close to 1 is accepted and set to exactly 1.
LADDER_END_TOLERANCE = 1e-6


class ParallelTemperingState(NamedTuple):
    """State of one parallel-tempering chain.

    Attributes
    ----------
    position
        Visible configuration of the replica at the highest inverse
        temperature (β = 1 unless ``inverse_temperature`` scales the ladder).
    replicas
        The inner kernel's states, stacked along a leading axis of length K in
        the order of the ladder (ascending β).
    step
        Number of steps taken; its parity selects the pairs proposed for
        exchange.
    """

    position: dict[str, Array]
    replicas: Any
    step: Array


class ParallelTemperingInfo(NamedTuple):
    """Per-step diagnostics of parallel tempering.

    Attributes
    ----------
    swap_acceptance
        Exchange acceptance probability min(1, exp((β_k − β_{k+1})(E_k − E_{k+1})))
        of each neighbouring pair (k, k + 1) after the inner steps, shape (K − 1,).
        It is computed for every pair, also those not proposed at this step; at
        stationarity its average over steps estimates each pair's acceptance rate.
    is_swapped
        Whether the pair exchanged its states at this step, shape (K − 1,).
    inner_info
        The inner kernel's info for every replica, stacked along a leading axis.
    """

    swap_acceptance: Array
    is_swapped: Array
    inner_info: Any


def geometric_ladder(beta_min: float, num_temperatures: int) -> Array:
    r"""Return K inverse temperatures spaced geometrically from ``beta_min`` to 1.

    .. math::

        β_k = β_{min}^{(K − k)/(K − 1)}, \qquad k = 1, …, K.

    For a heat capacity C that is constant over the ladder, the exchange rate
    of a pair depends only on √C (β_{k+1} − β_k)/β_k, so a constant ratio gives
    equal rates.

    Parameters
    ----------
    beta_min
        Smallest inverse temperature, in (0, 1).
    num_temperatures
        Number of replicas K, at least 2.

    Examples
    --------
    >>> geometric_ladder(0.25, 3).tolist()
    [0.25, 0.5, 1.0]
    """
    if isinstance(num_temperatures, bool) or not isinstance(
        num_temperatures, int | np.integer
    ):
        raise ValueError(
            f"`num_temperatures` must be an integer >= 2; got {num_temperatures!r}."
        )
    if num_temperatures < 2:
        raise ValueError(
            f"`num_temperatures` must be an integer >= 2; got {num_temperatures}."
        )
    if not np.isfinite(beta_min) or not 0.0 < beta_min < 1.0:
        raise ValueError(f"`beta_min` must lie in (0, 1); got {beta_min!r}.")
    exponents = np.linspace(1.0, 0.0, int(num_temperatures))
    ladder = np.float64(beta_min) ** exponents
    ladder[-1] = 1.0
    return jnp.asarray(ladder, dtype=float)


def check_ladder(inverse_temperatures: ArrayLike) -> Array:
    """Validate a ladder of inverse temperatures and return it as an array.

    Raises
    ------
    ValueError
        Unless the ladder is one-dimensional with at least two finite,
        positive, strictly increasing values ending at 1.

    Examples
    --------
    >>> check_ladder([0.5, 1.0]).tolist()
    [0.5, 1.0]
    """
    ladder = np.asarray(inverse_temperatures, dtype=np.float64)
    if ladder.ndim != 1 or ladder.size < 2:
        raise ValueError(
            "`inverse_temperatures` must be a 1-D array of at least two values; "
            f"got shape {ladder.shape}."
        )
    if not np.all(np.isfinite(ladder)) or np.any(ladder <= 0):
        raise ValueError(
            "`inverse_temperatures` must be finite and positive; got "
            f"{ladder.tolist()}."
        )
    if np.any(np.diff(ladder) <= 0):
        raise ValueError(
            "`inverse_temperatures` must be strictly increasing (hottest first); "
            f"got {ladder.tolist()}."
        )
    if abs(ladder[-1] - 1.0) > LADDER_END_TOLERANCE:
        raise ValueError(
            "`inverse_temperatures` must end at 1, the target distribution; got "
            f"last value {ladder[-1]}. Use geometric_ladder(beta_min, K) for a "
            "standard ladder."
        )
    ladder[-1] = 1.0
    return jnp.asarray(ladder, dtype=float)


def default_state_energy(model: EnergyModel) -> Callable[[Params, Any], Array]:
    """Return ``state_energy(params, state)``, the energy the inner kernel tempers.

    See the module documentation for the rule; the choice is made from the
    fields of the state when the returned function is traced.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from numpyro_ebm.models import BernoulliRBM
    >>> from numpyro_ebm.kernels.block_gibbs import BlockGibbsState
    >>> rbm = BernoulliRBM(3, 2, init_scale=0.0, visible_bias=jnp.ones(3))
    >>> state = BlockGibbsState({"v": jnp.ones(3)}, jnp.zeros(2))
    >>> float(default_state_energy(rbm)(rbm.init_params(), state))  # E(v, h)
    -3.0
    """
    latent_names = [site.name for site in model.latent_sites]

    def state_energy(params: Params, state: Any) -> Array:
        position = dict(state.position)
        latent = getattr(state, "latent", None)
        hidden = getattr(state, "hidden", None)
        if latent_names and isinstance(latent, dict):
            config = {**position, **latent}
        elif latent_names and hidden is not None and len(latent_names) == 1:
            config = {**position, latent_names[0]: hidden}
        else:
            return model.energy(params, jax.tree.map(lambda v: v[None], position))[0]
        return model.joint_energy(params, jax.tree.map(lambda v: v[None], config))[0]

    return state_energy


def parallel_tempering(
    model: EnergyModel,
    inverse_temperature: float = 1.0,
    *,
    make_kernel: Callable[..., Kernel],
    inverse_temperatures: ArrayLike,
    state_energy: Callable[[Params, Any], Array] | None = None,
) -> Kernel:
    """Build a parallel-tempering kernel over the kernel factory ``make_kernel``.

    Parameters
    ----------
    model
        The energy model.
    inverse_temperature
        β: scales the whole ladder, so the top replica samples exp(−β E).
        May be a traced scalar.
    make_kernel
        A kernel factory ``make_kernel(model, inverse_temperature=beta)`` such
        as :func:`~numpyro_ebm.kernels.block_gibbs` or
        ``functools.partial(local_field_gibbs, scan="random")``. It is called
        with a traced β, once per replica under ``jax.vmap``.
    inverse_temperatures
        The ladder β_1 < … < β_K = 1, for example from :func:`geometric_ladder`.
    state_energy
        ``state_energy(params, state) -> scalar`` for one inner state: the
        energy E such that the inner kernel at β targets exp(−β E) on the
        state. Defaults to :func:`default_state_energy`.

    Returns
    -------
    Kernel
        Pure ``init`` and ``step`` for one chain of K replicas; ``init`` starts
        every replica at the given position.

    Raises
    ------
    ValueError
        If the ladder is invalid (see :func:`check_ladder`).
    TypeError
        If ``make_kernel`` is not callable.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ebm.kernels.local_field import local_field_gibbs
    >>> from numpyro_ebm.models.pairwise import SpinGlass
    >>> model = SpinGlass(6)
    >>> params = model.init_params()
    >>> kernel = parallel_tempering(model, make_kernel=local_field_gibbs,
    ...                             inverse_temperatures=geometric_ladder(0.2, 4))
    >>> state = kernel.init(jax.random.key(0), {"s": jnp.ones(6)}, params)
    >>> state, info = kernel.step(jax.random.key(1), state, params)
    >>> state.position["s"].shape, info.swap_acceptance.shape
    ((6,), (3,))
    """
    ladder = check_ladder(inverse_temperatures)
    if not callable(make_kernel):
        raise TypeError(
            f"`make_kernel` must be a kernel factory such as block_gibbs; got "
            f"{make_kernel!r}."
        )
    # Build one kernel eagerly so that an unsuitable model raises here, not under
    # tracing.
    make_kernel(model)
    state_energy = default_state_energy(model) if state_energy is None else state_energy
    num_replicas = ladder.shape[0]

    def betas():
        return inverse_temperature * ladder

    def init(
        rng_key: PRNGKey, position: Configuration, params: Params
    ) -> ParallelTemperingState:
        def init_replica(beta, key):
            kernel = make_kernel(model, inverse_temperature=beta)
            return kernel.init(key, position, params)

        keys = jax.random.split(rng_key, num_replicas)
        replicas = jax.vmap(init_replica)(betas(), keys)
        top = jax.tree.map(lambda v: v[-1], replicas.position)
        return ParallelTemperingState(top, replicas, jnp.zeros((), jnp.int32))

    def step(
        rng_key: PRNGKey, state: ParallelTemperingState, params: Params
    ) -> tuple[ParallelTemperingState, ParallelTemperingInfo]:
        key_inner, key_swap = jax.random.split(rng_key)
        beta = betas()

        def step_replica(beta, key, replica):
            kernel = make_kernel(model, inverse_temperature=beta)
            return kernel.step(key, replica, params)

        keys = jax.random.split(key_inner, num_replicas)
        replicas, inner_info = jax.vmap(step_replica)(beta, keys, state.replicas)
        energies = jax.vmap(lambda replica: state_energy(params, replica))(replicas)

        log_ratio = (beta[:-1] - beta[1:]) * (energies[:-1] - energies[1:])
        swap_acceptance = jnp.exp(jnp.minimum(log_ratio, 0.0))
        is_proposed = jnp.arange(num_replicas - 1) % 2 == state.step % 2
        uniforms = jax.random.uniform(key_swap, (num_replicas - 1,))
        is_swapped = is_proposed & (uniforms < swap_acceptance)

        # Proposed pairs are disjoint, so each replica moves at most one place.
        no_swap = jnp.zeros(1, dtype=bool)
        moves_up = jnp.concatenate([is_swapped, no_swap])
        moves_down = jnp.concatenate([no_swap, is_swapped])
        source = jnp.arange(num_replicas) + moves_up.astype(int) - moves_down
        replicas = jax.tree.map(lambda leaf: leaf[source], replicas)

        top = jax.tree.map(lambda v: v[-1], replicas.position)
        new_state = ParallelTemperingState(top, replicas, state.step + 1)
        return new_state, ParallelTemperingInfo(swap_acceptance, is_swapped, inner_info)

    return Kernel(init, step)


class ParallelTempering(EnergyMCMCKernel):
    """Parallel tempering as a ``numpyro.infer.MCMCKernel``.

    The collected samples are the visible sites of the replica at β = 1. See
    :func:`parallel_tempering` for the parameters.

    Examples
    --------
    >>> import jax
    >>> from numpyro.infer import MCMC
    >>> from numpyro_ebm.kernels.block_gibbs import block_gibbs
    >>> from numpyro_ebm.models import BernoulliRBM
    >>> rbm = BernoulliRBM(5, 2)
    >>> kernel = ParallelTempering(rbm, make_kernel=block_gibbs,
    ...                            inverse_temperatures=[0.5, 1.0])
    >>> mcmc = MCMC(kernel, num_warmup=5, num_samples=10, progress_bar=False)
    >>> mcmc.run(jax.random.key(0), rbm.init_params())
    >>> mcmc.get_samples()["v"].shape
    (10, 5)
    """

    def __init__(
        self,
        model: EnergyModel,
        inverse_temperature: float = 1.0,
        *,
        make_kernel: Callable[..., Kernel],
        inverse_temperatures: ArrayLike,
        state_energy: Callable[[Params, Any], Array] | None = None,
    ):
        kernel = parallel_tempering(
            model,
            inverse_temperature,
            make_kernel=make_kernel,
            inverse_temperatures=inverse_temperatures,
            state_energy=state_energy,
        )
        super().__init__(model, kernel)
