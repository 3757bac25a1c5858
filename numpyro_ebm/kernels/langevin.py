r"""Langevin fantasy particles: unadjusted Langevin and Metropolis-adjusted (MALA).

Both move the chains in unconstrained coordinates z with the potential
U_θ(z) = E_θ(T(z)) − log |det J_T(z)| (see :mod:`numpyro_ebm.kernels.hmc`).

The unadjusted Langevin algorithm (ULA), with which Du & Mordatch (2019)
train neural energies, takes the step

.. math::

    z ← z − \frac{ε}{2} ∇U_θ(z) + σ ξ,  \qquad ξ ∼ N(0, I),

with step size ε and noise scale σ set separately. It discretises the Langevin
diffusion only when σ² = ε, and even then its stationary distribution is off
by O(ε). With σ² < ε it samples a colder distribution: on a Gaussian target
the variance shrinks by about σ²/ε.

MALA proposes the same step with σ² = ε and accepts it with probability

.. math::

    \min\Big(1, \exp\big(U(z) − U(z') + \log q(z \mid z') − \log q(z' \mid z)\big)\Big),
    \qquad q(z' \mid z) = N\big(z'; z − \tfrac{ε}{2} ∇U(z), ε I\big),

so it is exact for any ε. Its step size is adapted across updates by the same
shared controller as HMC, towards the acceptance 0.574 that is optimal for
MALA in high dimension (Roberts & Rosenthal 1998).

References
----------
Roberts, G. O. & Tweedie, R. L. (1996). Exponential convergence of Langevin
distributions and their discrete approximations. Bernoulli 2(4). Roberts,
G. O. & Rosenthal, J. S. (1998). Optimal scaling of discrete approximations to
Langevin diffusions. JRSS B 60(1). Du, Y. & Mordatch, I. (2019). Implicit
generation and modeling with energy-based models. NeurIPS 2019.
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.distributions.transforms import Transform

from numpyro_ebm.kernels.base import EnergyMCMCKernel, Kernel
from numpyro_ebm.kernels.hmc import (
    ADAPTATION_RATE,
    _check_adaptation,
    _check_step_size,
    _model_target,
    _UnconstrainedTarget,
    adapted_step_size,
)
from numpyro_ebm.models.energy import EnergyModel
from numpyro_ebm.types import Array, Configuration, Params, PRNGKey

# Optimal mean acceptance of MALA for product targets as d → ∞ (Roberts &
# Rosenthal 1998).
MALA_TARGET_ACCEPTANCE = 0.574


class LangevinState(NamedTuple):
    """State of one unadjusted Langevin chain.

    Attributes
    ----------
    position
        Constrained values of the visible sites.
    z
        Every continuous site in unconstrained coordinates.
    """

    position: dict[str, Array]
    z: dict[str, Array]


class LangevinInfo(NamedTuple):
    """Per-step diagnostics of unadjusted Langevin.

    Attributes
    ----------
    step_size
        Step size ε.
    gradient_norm
        Euclidean norm of ∇U at the start of the step.
    """

    step_size: Array
    gradient_norm: Array


class MALAState(NamedTuple):
    """State of one MALA chain.

    Attributes
    ----------
    position
        Constrained values of the visible sites.
    z
        Every continuous site in unconstrained coordinates.
    step_size
        Step size ε, shared by all chains and set by the controller in
        ``Kernel.adapt``.
    """

    position: dict[str, Array]
    z: dict[str, Array]
    step_size: Array


class MALAInfo(NamedTuple):
    """Per-step diagnostics of MALA.

    Attributes
    ----------
    acceptance_rate
        Metropolis–Hastings acceptance probability of the proposal.
    step_size
        Step size ε of the step.
    """

    acceptance_rate: Array
    step_size: Array


def langevin_step(
    rng_key: PRNGKey,
    z: Configuration,
    potential_fn: Callable[[Configuration], Array],
    step_size: Array,
    noise_scale: Array,
) -> tuple[dict[str, Array], Array]:
    r"""Take one unadjusted Langevin step z − (ε/2) ∇U(z) + σ ξ.

    Returns
    -------
    tuple
        The new z and the norm of ∇U(z).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> z, norm = langevin_step(jax.random.key(0), {"x": jnp.ones(2)},
    ...                         lambda z: 0.5 * jnp.sum(z["x"] ** 2), 0.1, 0.0)
    >>> [round(v, 4) for v in z["x"].tolist()], round(float(norm), 4)
    ([0.95, 0.95], 1.4142)
    """
    flat, unravel = ravel_pytree(z)
    grad = ravel_pytree(jax.grad(potential_fn)(z))[0]
    noise = jax.random.normal(rng_key, flat.shape)
    new = flat - 0.5 * step_size * grad + noise_scale * noise
    return unravel(new), jnp.linalg.norm(grad)


def mala_step(
    rng_key: PRNGKey,
    z: Configuration,
    potential_fn: Callable[[Configuration], Array],
    step_size: Array,
) -> tuple[dict[str, Array], Array]:
    """Take one MALA step with step size ε (proposal variance ε).

    Returns
    -------
    tuple
        The new z (the current one when the proposal is rejected) and the
        acceptance probability.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> z, accept = mala_step(jax.random.key(0), {"x": jnp.zeros(2)},
    ...                       lambda z: 0.5 * jnp.sum(z["x"] ** 2), 0.5)
    >>> z["x"].shape, bool(0 <= accept <= 1)
    ((2,), True)
    """
    key_noise, key_accept = jax.random.split(rng_key)
    flat, unravel = ravel_pytree(z)

    def flat_value_and_grad(x):
        value, grad = jax.value_and_grad(potential_fn)(unravel(x))
        return value, ravel_pytree(grad)[0]

    energy, grad = flat_value_and_grad(flat)
    noise = jax.random.normal(key_noise, flat.shape)
    proposal = flat - 0.5 * step_size * grad + jnp.sqrt(step_size) * noise
    proposal_energy, proposal_grad = flat_value_and_grad(proposal)

    # log q(z | z') − log q(z' | z); the forward residual is √ε ξ by construction.
    backward = flat - proposal + 0.5 * step_size * proposal_grad
    log_ratio = 0.5 * jnp.sum(noise**2) - jnp.sum(backward**2) / (2 * step_size)
    log_accept = energy - proposal_energy + log_ratio
    accept_prob = jnp.exp(jnp.minimum(jnp.nan_to_num(log_accept, nan=-jnp.inf), 0.0))
    accepted = jax.random.uniform(key_accept) < accept_prob
    return unravel(jnp.where(accepted, proposal, flat)), accept_prob


class _MALASampler(NamedTuple):
    """MALA on an :class:`~numpyro_ebm.kernels.hmc.UnconstrainedTarget`.

    ``init(rng_key, position, args)``, ``step(rng_key, state, args)`` and
    ``adapt(states, infos)`` work like a :class:`Kernel` whose parameters are
    the tuple ``args`` passed to the target's ``potential_fn_gen``.
    """

    init: Callable
    step: Callable
    adapt: Callable


def _mala_sampler(
    target: _UnconstrainedTarget,
    step_size: float,
    target_acceptance: float,
    adaptation_rate: float,
) -> _MALASampler:
    """Build the MALA sampler of ``target`` with a shared adapted step size."""

    def init(rng_key: PRNGKey, position: Configuration, args: tuple) -> MALAState:
        z = target.unconstrain(rng_key, position)
        return MALAState(target.constrain(z), z, jnp.asarray(step_size, dtype=float))

    def step(
        rng_key: PRNGKey, state: MALAState, args: tuple
    ) -> tuple[MALAState, MALAInfo]:
        potential = target.potential_fn_gen(*args)
        z, accept_prob = mala_step(rng_key, state.z, potential, state.step_size)
        info = MALAInfo(acceptance_rate=accept_prob, step_size=state.step_size)
        return MALAState(target.constrain(z), z, state.step_size), info

    def adapt(states: MALAState, infos: Any) -> MALAState:
        new_step_size = adapted_step_size(
            states.step_size, infos.acceptance_rate, target_acceptance, adaptation_rate
        )
        return states._replace(step_size=new_step_size)

    return _MALASampler(init, step, adapt)


def langevin(
    model: EnergyModel,
    *,
    step_size: float,
    noise_scale: float | None = None,
    transforms: Mapping[str, Transform] | None = None,
) -> Kernel:
    """Build the unadjusted Langevin kernel of a continuous model.

    The chain targets exp(−U) only approximately: the step has no Metropolis
    correction, so its stationary distribution differs from the model by O(ε)
    when ``noise_scale**2 == step_size`` and is colder when the noise is
    smaller. Use :func:`mala` or :func:`~numpyro_ebm.kernels.hmc.hmc` for an
    exact kernel.

    Parameters
    ----------
    model
        An energy model whose sites are all continuous.
    step_size
        ε, the gradient step is −(ε/2) ∇U.
    noise_scale
        σ, the standard deviation of the added noise; ``sqrt(step_size)`` by
        default.
    transforms
        Bijections for constrained sites, as for
        :func:`~numpyro_ebm.kernels.hmc.hmc`.

    Returns
    -------
    Kernel
        ``init`` and ``step`` with :class:`LangevinState` and
        :class:`LangevinInfo`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ebm.models import EnergyModel
    >>> model = EnergyModel.from_energy_fn(
    ...     lambda p, x: 0.5 * jnp.sum(x**2), {}, shape=2, domain=None)
    >>> kernel = langevin(model, step_size=0.1, noise_scale=0.01)
    >>> state = kernel.init(jax.random.key(0), {"x": jnp.ones(2)}, {})
    >>> state, info = kernel.step(jax.random.key(1), state, {})
    >>> state.position["x"].shape
    (2,)
    """
    _check_step_size(step_size)
    noise_scale = float(np.sqrt(step_size)) if noise_scale is None else noise_scale
    if not (np.isfinite(noise_scale) and noise_scale >= 0):
        raise ValueError(
            f"`noise_scale` must be non-negative and finite; got {noise_scale!r}."
        )
    target = _model_target(model, transforms)

    def init(
        rng_key: PRNGKey, position: Configuration, params: Params
    ) -> LangevinState:
        z = target.unconstrain(rng_key, position)
        return LangevinState(target.constrain(z), z)

    def step(
        rng_key: PRNGKey, state: LangevinState, params: Params
    ) -> tuple[LangevinState, LangevinInfo]:
        potential = target.potential_fn_gen(params)
        z, norm = langevin_step(rng_key, state.z, potential, step_size, noise_scale)
        info = LangevinInfo(jnp.asarray(step_size, dtype=float), norm)
        return LangevinState(target.constrain(z), z), info

    return Kernel(init, step)


def mala(
    model: EnergyModel,
    *,
    step_size: float = 0.1,
    target_acceptance: float = MALA_TARGET_ACCEPTANCE,
    adaptation_rate: float = ADAPTATION_RATE,
    transforms: Mapping[str, Transform] | None = None,
) -> Kernel:
    """Build the MALA kernel of a continuous model.

    The learner calls ``adapt`` after each update's sweeps, which moves the
    shared step size towards ``target_acceptance``.

    Parameters
    ----------
    model
        An energy model whose sites are all continuous.
    step_size
        Initial step size ε (proposal variance).
    target_acceptance
        Target mean acceptance probability of the step-size controller.
    adaptation_rate
        Gain of the controller on the log step size; 0 keeps it fixed.
    transforms
        Bijections for constrained sites, as for
        :func:`~numpyro_ebm.kernels.hmc.hmc`.

    Returns
    -------
    Kernel
        ``init``, ``step`` and ``adapt`` with :class:`MALAState` and
        :class:`MALAInfo`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ebm.models import EnergyModel
    >>> model = EnergyModel.from_energy_fn(
    ...     lambda p, x: 0.5 * jnp.sum(x**2), {}, shape=2, domain=None)
    >>> kernel = mala(model, step_size=0.5)
    >>> state = kernel.init(jax.random.key(0), {"x": jnp.ones(2)}, {})
    >>> state, info = kernel.step(jax.random.key(1), state, {})
    >>> float(info.step_size)
    0.5
    """
    _check_step_size(step_size)
    _check_adaptation(target_acceptance, adaptation_rate)
    sampler = _mala_sampler(
        _model_target(model, transforms), step_size, target_acceptance, adaptation_rate
    )

    def init(rng_key: PRNGKey, position: Configuration, params: Params) -> MALAState:
        return sampler.init(rng_key, position, (params,))

    def step(
        rng_key: PRNGKey, state: MALAState, params: Params
    ) -> tuple[MALAState, MALAInfo]:
        return sampler.step(rng_key, state, (params,))

    return Kernel(init, step, sampler.adapt)


class EnergyLangevin(EnergyMCMCKernel):
    """Unadjusted Langevin as a ``numpyro.infer.MCMCKernel``; see :func:`langevin`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from numpyro.infer import MCMC
    >>> from numpyro_ebm.models import EnergyModel
    >>> model = EnergyModel.from_energy_fn(
    ...     lambda p, x: 0.5 * jnp.sum(x**2), {}, shape=2, domain=None)
    >>> mcmc = MCMC(EnergyLangevin(model, step_size=0.1), num_warmup=5,
    ...             num_samples=10, progress_bar=False)
    >>> mcmc.run(jax.random.key(0), {})
    >>> mcmc.get_samples()["x"].shape
    (10, 2)
    """

    def __init__(self, model: EnergyModel, **kwargs: Any):
        super().__init__(model, langevin(model, **kwargs))


class EnergyMALA(EnergyMCMCKernel):
    """MALA as a ``numpyro.infer.MCMCKernel``; see :func:`mala`.

    ``numpyro.infer.MCMC`` does not call ``Kernel.adapt``, so the step size
    stays at ``step_size`` there.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from numpyro.infer import MCMC
    >>> from numpyro_ebm.models import EnergyModel
    >>> model = EnergyModel.from_energy_fn(
    ...     lambda p, x: 0.5 * jnp.sum(x**2), {}, shape=2, domain=None)
    >>> mcmc = MCMC(EnergyMALA(model, step_size=0.5), num_warmup=5,
    ...             num_samples=10, progress_bar=False)
    >>> mcmc.run(jax.random.key(0), {})
    >>> mcmc.get_samples()["x"].shape
    (10, 2)
    """

    def __init__(self, model: EnergyModel, **kwargs: Any):
        super().__init__(model, mala(model, **kwargs))
