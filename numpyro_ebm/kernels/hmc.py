r"""Hamiltonian Monte Carlo fantasy particles driven by NumPyro's HMC and NUTS.

The chains move in unconstrained coordinates z, where the potential is

.. math::

    U_θ(z) = E_θ(T(z)) − \log |\det J_T(z)|,

with T the bijection from unconstrained to constrained values of each site
(``numpyro.distributions.biject_to`` of the site's support), so positive,
interval and simplex-valued sites need no special treatment.
``State.position`` contains the constrained values T(z) of the visible sites,
which the learner uses in the data-free energy E_θ(x) (no Jacobian).

Each step calls the functional pair of :func:`numpyro.infer.hmc.hmc`, with
``potential_fn_gen`` taking θ, so θ is an argument of every transition. This
module adds what persistent chains under changing θ need:

- the cached potential energy and gradient of the NumPyro state are
  recomputed at the current θ before each transition, because θ changed since
  the previous update;
- HMC gets ``trajectory_length=None`` so that ``step_size`` is used as given,
  and the step size of each transition is multiplied by a uniform draw in
  [1 − j, 1 + j] to break the periodicity of fixed-length trajectories;
- NumPyro's warm-up adaptation only runs during ``num_warmup`` steps, so the
  step size is adapted across updates in :attr:`Kernel.adapt` by a shared
  controller on the chains' mean acceptance probability ā:

  .. math::

      \log ε ← \log ε + κ (ā − a^*),

  a Robbins–Monro recursion with constant gain κ that tracks the moving
  target a* as θ changes;
- optionally, the diagonal inverse mass matrix is set after each update to the
  regularised variance of the chains' unconstrained positions;
- NumPyro's ``HMCState`` is rebuilt at every transition from the chain's
  position, step size and mass matrix. Its fields whose dtype changes after
  the first transition (``num_steps``) therefore never reach the chains'
  state, whose type must stay fixed for the learner's update to compile once.

References
----------
Neal, R. M. (2011). MCMC using Hamiltonian dynamics. In Handbook of Markov
Chain Monte Carlo, chapter 5. Hoffman, M. D. & Gelman, A. (2014). The No-U-Turn
sampler. JMLR 15. Andrieu, C. & Thoms, J. (2008). A tutorial on adaptive MCMC.
Statistics and Computing 18.
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from numpyro.distributions import biject_to, constraints
from numpyro.distributions.transforms import IdentityTransform, Transform
from numpyro.infer import hmc as numpyro_hmc

from numpyro_ebm.kernels.base import EnergyMCMCKernel, Kernel, random_position
from numpyro_ebm.models.energy import EnergyModel
from numpyro_ebm.models.sites import Site
from numpyro_ebm.types import Array, Configuration, Params, PRNGKey

# NumPyro's and Stan's default target acceptance probability for HMC and NUTS.
HMC_TARGET_ACCEPTANCE = 0.8
# Gain κ of the log step-size controller. An acceptance 0.2 below target shrinks
# the step size by 10 % per update, which follows θ within tens of updates. The
# noise of a mean over a hundred chains (about 0.02) moves it by about 1 %.
ADAPTATION_RATE = 0.5
# Step sizes are kept in this range so that a run of zero acceptance cannot
# drive them to underflow, nor full acceptance to overflow.
MIN_STEP_SIZE, MAX_STEP_SIZE = 1e-6, 1e3
# Half-width j of the step-size jitter of HMC, [0.8, 1.2]× per transition.
HMC_STEP_SIZE_JITTER = 0.2
# Stan's regularisation of an estimated diagonal mass matrix (also used by
# NumPyro's warm-up): shrink n samples' variance towards 1e-3 with weight 5.
MASS_MATRIX_SHRINKAGE, MASS_MATRIX_FLOOR = 5.0, 1e-3
# Positions outside a site's support start from a uniform draw in (−2, 2) in
# unconstrained coordinates, as NumPyro's ``init_to_uniform`` does.
UNIFORM_INIT_RADIUS = 2.0
# Relative tolerance of the check that a model's potential equals its energy
# plus the log-Jacobian of the transforms, in float32.
POTENTIAL_CHECK_TOLERANCE = 1e-3


# -- unconstrained coordinates -------------------------------------------------------


class _UnconstrainedTarget(NamedTuple):
    """Potential over the unconstrained values of some continuous sites.

    Shared by the HMC, NUTS, Langevin and mixed kernels.

    Attributes
    ----------
    potential_fn_gen
        ``potential_fn_gen(*args)`` returns ``U(z)`` for a dict ``z`` of the
        continuous sites in unconstrained coordinates, for example with
        ``args = (params,)``.
    sites
        The continuous sites the kernel moves.
    transforms
        Bijection from unconstrained to constrained values, by site name.
    visible
        Names of the sites whose constrained values form ``State.position``.
    """

    potential_fn_gen: Callable[..., Callable[[Configuration], Array]]
    sites: tuple[Site, ...]
    transforms: dict[str, Transform]
    visible: tuple[str, ...]

    def constrain(self, z: Configuration) -> dict[str, Array]:
        """Map unconstrained values of the visible sites to constrained values."""
        return {name: self.transforms[name](z[name]) for name in self.visible}

    def unconstrain(
        self, rng_key: PRNGKey, position: Configuration
    ) -> dict[str, Array]:
        """Map a visible configuration to unconstrained values of every site.

        Elements outside a site's support, and latent sites, which ``position``
        does not contain, start from a uniform draw in (−2, 2).
        """
        keys = jax.random.split(rng_key, len(self.sites))
        z = {}
        for key, site in zip(keys, self.sites, strict=True):
            transform = self.transforms[site.name]
            shape = transform.inverse_shape(site.shape)
            uniform = jax.random.uniform(
                key, shape, minval=-UNIFORM_INIT_RADIUS, maxval=UNIFORM_INIT_RADIUS
            )
            if site.name not in position:
                z[site.name] = uniform
                continue
            value = transform.inv(jnp.asarray(position[site.name], dtype=float))
            z[site.name] = jnp.where(jnp.isfinite(value), value, uniform)
        return z


def _site_transforms(
    model: EnergyModel,
    sites: tuple[Site, ...],
    transforms: Mapping[str, Transform] | None = None,
) -> dict[str, Transform]:
    """Return the unconstrained-to-constrained bijection of each continuous site.

    ``transforms`` wins over the model's own ``site_transforms`` attribute (if
    it has one); the other sites are real-valued (identity).
    """
    known = dict(getattr(model, "site_transforms", None) or {})
    known.update(transforms or {})
    names = {site.name for site in model.sites}
    unknown = sorted(set(known) - names)
    if unknown:
        raise ValueError(
            f"`transforms` names the sites {unknown}, which the model does not have; "
            f"its sites are {sorted(names)}."
        )
    identity = biject_to(constraints.real)
    return {site.name: known.get(site.name, identity) for site in sites}


def _model_target(
    model: EnergyModel, transforms: Mapping[str, Transform] | None = None
) -> _UnconstrainedTarget:
    """Build the target of a model whose sites are all continuous.

    Raises
    ------
    TypeError
        If the model has a discrete site.
    ValueError
        If the model's potential does not match its energy and the transforms.
    """
    discrete = [site.name for site in model.sites if site.is_discrete]
    if discrete:
        raise TypeError(
            f"this kernel moves continuous sites only; sites {discrete} are "
            "discrete. Use `mixed_gibbs` for models with discrete and continuous "
            "sites."
        )
    by_name = _site_transforms(model, model.sites, transforms)
    _check_potential(model, by_name)
    return _UnconstrainedTarget(
        potential_fn_gen=model.potential_fn,
        sites=model.sites,
        transforms=by_name,
        visible=model.visible_names,
    )


def _check_potential(model: EnergyModel, transforms: Mapping[str, Transform]) -> None:
    """Check that the potential is the energy plus the transforms' log-Jacobian.

    A model built with ``EnergyModel.from_numpyro`` applies the transform of
    each site's support inside its potential. A kernel that assumed the
    identity for such a site would sample the wrong distribution, so the two
    are compared once, eagerly, at the model's initial parameters and a
    random point.

    Raises
    ------
    ValueError
        If the two differ, which means a site's transform is missing.
    """
    key_z, key_discrete = jax.random.split(jax.random.key(0))
    params = model.init_params()
    z = {}
    for key, site in zip(jax.random.split(key_z, len(model.sites)), model.sites):
        if site.name in transforms:
            shape = transforms[site.name].inverse_shape(site.shape)
            z[site.name] = jax.random.uniform(key, shape, minval=-1.0, maxval=1.0)
    discrete = random_position(
        key_discrete, tuple(s for s in model.sites if s.is_discrete)
    )
    potential = float(model.potential_fn(params)({**z, **discrete}))
    constrained = {name: transforms[name](value) for name, value in z.items()}
    log_det = sum(
        jnp.sum(transforms[name].log_abs_det_jacobian(z[name], constrained[name]))
        for name in z
    )
    config = jax.tree.map(lambda v: v[None], {**constrained, **discrete})
    expected = float(model.joint_energy(params, config)[0] - log_det)
    if not (np.isfinite(potential) and np.isfinite(expected)):
        # NOTE: a model that is not finite at its initial parameters cannot be
        # checked here; its transforms are then taken as given.
        return
    if abs(potential - expected) > POTENTIAL_CHECK_TOLERANCE * (1.0 + abs(expected)):
        names = sorted(
            name
            for name, transform in transforms.items()
            if isinstance(transform, IdentityTransform)
        )
        raise ValueError(
            "the model's potential_fn does not equal its energy plus the "
            f"log-Jacobian of the site transforms ({potential:.6g} against "
            f"{expected:.6g}), so a continuous site has a constrained support that "
            f"the kernel does not know. Sites taken as real-valued: {names}. Pass "
            "`transforms={name: numpyro.distributions.biject_to(support)}`."
        )


# -- step-size and mass-matrix adaptation --------------------------------------------


def adapted_step_size(
    step_size: Array, acceptance_rate: Array, target: float, rate: float
) -> Array:
    r"""Apply one step of the shared log step-size controller to every chain.

    .. math::

        \log ε ← \log ε + κ (ā − a^*),

    where ā is the mean acceptance probability over the chains (non-finite
    values count as 0) and ε is clipped to [1e-6, 1e3].

    Parameters
    ----------
    step_size
        Step sizes of the chains, shape ``(chains,)``; their geometric mean is
        the controller's state.
    acceptance_rate
        Acceptance probabilities of the chains' last transition.
    target
        Target mean acceptance probability a*.
    rate
        Gain κ; 0 keeps the step size fixed.

    Returns
    -------
    Array
        The new shared step size, broadcast to the shape of ``step_size``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> new = adapted_step_size(jnp.full(4, 0.1), jnp.zeros(4), target=0.8, rate=0.5)
    >>> round(float(new[0]), 4)
    0.067
    """
    acceptance = jnp.nan_to_num(jnp.asarray(acceptance_rate, float), nan=0.0)
    log_step = jnp.mean(jnp.log(step_size)) + rate * (jnp.mean(acceptance) - target)
    log_step = jnp.clip(log_step, np.log(MIN_STEP_SIZE), np.log(MAX_STEP_SIZE))
    return jnp.full_like(step_size, jnp.exp(log_step))


def chain_inverse_mass_matrix(z: Configuration) -> Array:
    """Return the regularised variance of the chains' unconstrained coordinates.

    ``z`` contains every chain (leading axis). The variance of n chains is shrunk
    towards 1e-3 as in Stan: (n / (n + 5)) var + 1e-3 · 5 / (n + 5).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> z = {"x": jnp.array([[0.0, 1.0], [2.0, 1.0]])}
    >>> [round(v, 4) for v in chain_inverse_mass_matrix(z).tolist()]
    [0.2864, 0.0007]
    """
    flat = jax.vmap(lambda one: ravel_pytree(one)[0])(z)
    count = flat.shape[0]
    weight = count / (count + MASS_MATRIX_SHRINKAGE)
    return weight * jnp.var(flat, axis=0) + MASS_MATRIX_FLOOR * (1.0 - weight)


def _check_adaptation(target_acceptance: float, adaptation_rate: float) -> None:
    """Raise ``ValueError`` for a target outside (0, 1) or a negative gain."""
    if not 0.0 < target_acceptance < 1.0:
        raise ValueError(
            f"`target_acceptance` must be in (0, 1); got {target_acceptance!r}."
        )
    if not adaptation_rate >= 0.0:
        raise ValueError(
            f"`adaptation_rate` must be non-negative (0 keeps the step size fixed); "
            f"got {adaptation_rate!r}."
        )


def _check_step_size(step_size: float) -> None:
    """Raise ``ValueError`` unless ``step_size`` is a positive finite number."""
    if not (np.isfinite(step_size) and step_size > 0):
        raise ValueError(f"`step_size` must be positive and finite; got {step_size!r}.")


# -- the HMC and NUTS transition --------------------------------------------------------


class HMCState(NamedTuple):
    """State of one HMC or NUTS chain.

    NumPyro's ``HMCState`` is rebuilt from these fields at each transition, so
    the chains carry only what changes: the fields NumPyro keeps for its own
    warm-up would be copied per chain at every update.

    Attributes
    ----------
    position
        Constrained values of the visible sites.
    z
        Every continuous site in unconstrained coordinates.
    step_size
        Step size before jitter, shared by all chains and set by the
        controller in ``Kernel.adapt``.
    inverse_mass_matrix
        Diagonal inverse mass matrix over the flattened z, or ``None`` for the
        identity (when the mass matrix is not adapted).
    rng_key
        Key of the next transition's step-size jitter.
    """

    position: dict[str, Array]
    z: dict[str, Array]
    step_size: Array
    inverse_mass_matrix: Array | None
    rng_key: PRNGKey


class HMCInfo(NamedTuple):
    """Per-transition diagnostics of HMC and NUTS.

    Attributes
    ----------
    acceptance_rate
        Metropolis acceptance probability of the trajectory (for NUTS, the
        mean over the tree's proposals).
    step_size
        Step size of the transition, after jitter.
    num_steps
        Leapfrog steps taken (for NUTS, 2^depth − 1 for a tree of that depth).
    diverging
        Whether the energy error exceeded NumPyro's divergence threshold 1000.
    """

    acceptance_rate: Array
    step_size: Array
    num_steps: Array
    diverging: Array


class _HMCSettings(NamedTuple):
    """Options of :func:`_hamiltonian_sampler`; see :func:`hmc` and :func:`nuts`."""

    algo: str
    step_size: float
    num_steps: int | None
    max_tree_depth: int
    target_acceptance: float
    adaptation_rate: float
    step_size_jitter: float
    adapt_mass_matrix: bool


def _placeholder(leaf: jax.ShapeDtypeStruct) -> Array:
    """Return a constant of the leaf's shape and dtype, for fields NumPyro ignores."""
    if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
        return jax.random.key(0)
    return jnp.zeros(leaf.shape, leaf.dtype)


def _jittered(rng_key: PRNGKey, step_size: Array, jitter: float) -> Array:
    if jitter == 0.0:
        return step_size
    scale = jax.random.uniform(rng_key, minval=1.0 - jitter, maxval=1.0 + jitter)
    return step_size * scale


class _HamiltonianSampler(NamedTuple):
    """HMC or NUTS on an :class:`_UnconstrainedTarget`, with potential arguments.

    ``init(rng_key, position, args)``, ``step(rng_key, state, args)`` and
    ``adapt(states, infos)`` work like a :class:`Kernel` whose parameters are
    the tuple ``args`` passed to the target's ``potential_fn_gen``.
    """

    init: Callable
    step: Callable
    adapt: Callable


def _hamiltonian_sampler(
    target: _UnconstrainedTarget, settings: _HMCSettings, example_args: tuple
) -> _HamiltonianSampler:
    """Build the HMC or NUTS sampler of ``target`` from NumPyro's functional pair.

    ``example_args`` are arguments of the right structure, used once to trace
    NumPyro's ``init_kernel``. It stores the integrator settings (fixed number
    of steps, tree depth) in its closure, which ``sample_kernel`` reads, and
    its output's structure is the template of the state passed to
    ``sample_kernel`` at every transition.
    """
    init_kernel, sample_kernel = numpyro_hmc.hmc(
        potential_fn_gen=target.potential_fn_gen, algo=settings.algo
    )

    def init_hmc_state(rng_key, z, args):
        return init_kernel(
            z,
            0,
            step_size=settings.step_size,
            adapt_step_size=False,
            adapt_mass_matrix=False,
            num_steps=settings.num_steps,
            trajectory_length=None,
            max_tree_depth=settings.max_tree_depth,
            model_args=args,
            rng_key=rng_key,
        )

    example_z = {
        site.name: jnp.zeros(target.transforms[site.name].inverse_shape(site.shape))
        for site in target.sites
    }
    size = ravel_pytree(example_z)[0].size
    structure = jax.eval_shape(
        init_hmc_state, jax.random.key(0), example_z, example_args
    )

    def numpyro_state(state: HMCState, step_size, energy, grad, rng_key):
        """Build NumPyro's ``HMCState`` at ``state.z`` with the refreshed potential.

        The counter ``i`` is an unbatched 0: NumPyro runs its warm-up adaptation
        while ``i < num_warmup`` (0 here), and a counter batched over chains
        would turn that branch into a select computed at every step.
        """
        template = jax.tree.map(_placeholder, structure)
        inverse_mass = state.inverse_mass_matrix
        if inverse_mass is None:
            inverse_mass = jnp.ones(size)
        adapt_state = template.adapt_state._replace(
            step_size=step_size,
            inverse_mass_matrix=inverse_mass,
            mass_matrix_sqrt=jax.lax.rsqrt(inverse_mass),
            mass_matrix_sqrt_inv=jnp.sqrt(inverse_mass),
        )
        return template._replace(
            z=state.z,
            z_grad=grad,
            potential_energy=energy,
            adapt_state=adapt_state,
            rng_key=rng_key,
        )

    def init(rng_key: PRNGKey, position: Configuration, args: tuple) -> HMCState:
        key_position, key_jitter = jax.random.split(rng_key)
        z = target.unconstrain(key_position, position)
        inverse_mass = jnp.ones(size) if settings.adapt_mass_matrix else None
        step_size = jnp.asarray(settings.step_size, dtype=float)
        return HMCState(target.constrain(z), z, step_size, inverse_mass, key_jitter)

    def step(
        rng_key: PRNGKey, state: HMCState, args: tuple
    ) -> tuple[HMCState, HMCInfo]:
        step_size = _jittered(state.rng_key, state.step_size, settings.step_size_jitter)
        # The potential and its gradient are recomputed at the current θ, because
        # values cached by the previous update were computed under the old θ.
        energy, grad = jax.value_and_grad(target.potential_fn_gen(*args))(state.z)
        hmc_state = numpyro_state(state, step_size, energy, grad, rng_key)
        hmc_state = sample_kernel(hmc_state, model_args=args)
        # NumPyro's num_steps is a Python int in HMC and an array in NUTS; one
        # dtype keeps the info's type, and so the compiled update, fixed.
        info = HMCInfo(
            acceptance_rate=jnp.asarray(hmc_state.accept_prob, float),
            step_size=step_size,
            num_steps=jnp.asarray(hmc_state.num_steps, jnp.int32),
            diverging=jnp.asarray(hmc_state.diverging, bool),
        )
        # NumPyro split `rng_key` and returns the first part for its next
        # transition, which draws nothing else here: it draws the next jitter.
        new_state = HMCState(
            target.constrain(hmc_state.z),
            hmc_state.z,
            state.step_size,
            state.inverse_mass_matrix,
            hmc_state.rng_key,
        )
        return new_state, info

    def adapt(states: HMCState, infos: Any) -> HMCState:
        step_size = adapted_step_size(
            states.step_size,
            infos.acceptance_rate,
            settings.target_acceptance,
            settings.adaptation_rate,
        )
        inverse_mass = states.inverse_mass_matrix
        if settings.adapt_mass_matrix:
            variance = chain_inverse_mass_matrix(states.z)
            inverse_mass = jnp.broadcast_to(variance, inverse_mass.shape)
        return states._replace(step_size=step_size, inverse_mass_matrix=inverse_mass)

    return _HamiltonianSampler(init, step, adapt)


def _check_hmc_settings(settings: _HMCSettings) -> None:
    _check_step_size(settings.step_size)
    _check_adaptation(settings.target_acceptance, settings.adaptation_rate)
    if settings.algo == "HMC" and (
        not isinstance(settings.num_steps, int | np.integer) or settings.num_steps < 1
    ):
        raise ValueError(
            f"`num_steps` must be a positive integer; got {settings.num_steps!r}."
        )
    depth = settings.max_tree_depth
    if not isinstance(depth, int | np.integer) or depth < 1:
        raise ValueError(f"`max_tree_depth` must be a positive integer; got {depth!r}.")
    if not 0.0 <= settings.step_size_jitter < 1.0:
        raise ValueError(
            f"`step_size_jitter` must be in [0, 1); got {settings.step_size_jitter!r}."
        )


def _model_kernel(
    model: EnergyModel, settings: _HMCSettings, transforms: Mapping | None
) -> Kernel:
    _check_hmc_settings(settings)
    target = _model_target(model, transforms)
    sampler = _hamiltonian_sampler(target, settings, (model.init_params(),))

    def init(rng_key: PRNGKey, position: Configuration, params: Params) -> HMCState:
        return sampler.init(rng_key, position, (params,))

    def step(
        rng_key: PRNGKey, state: HMCState, params: Params
    ) -> tuple[HMCState, HMCInfo]:
        return sampler.step(rng_key, state, (params,))

    return Kernel(init, step, sampler.adapt)


# -- public constructors ------------------------------------------------------------------


def hmc(
    model: EnergyModel,
    *,
    step_size: float = 0.1,
    num_steps: int = 5,
    target_acceptance: float = HMC_TARGET_ACCEPTANCE,
    adaptation_rate: float = ADAPTATION_RATE,
    step_size_jitter: float = HMC_STEP_SIZE_JITTER,
    adapt_mass_matrix: bool = False,
    transforms: Mapping[str, Transform] | None = None,
) -> Kernel:
    """Build the HMC fantasy-particle kernel of a continuous model.

    Each step is one NumPyro HMC transition of ``num_steps`` leapfrog steps at
    the current θ. The learner calls ``adapt`` after each update's sweeps,
    which moves the shared step size towards ``target_acceptance`` and, with
    ``adapt_mass_matrix=True``, sets the diagonal inverse mass matrix to the
    chains' regularised variance (needs tens of chains to be reliable).

    Parameters
    ----------
    model
        An energy model whose sites are all continuous.
    step_size
        Initial leapfrog step size.
    num_steps
        Leapfrog steps per transition.
    target_acceptance
        Target mean acceptance probability of the step-size controller.
    adaptation_rate
        Gain of the controller on the log step size; 0 keeps it fixed.
    step_size_jitter
        Each transition uses the step size times a uniform draw in
        [1 − jitter, 1 + jitter].
    adapt_mass_matrix
        Whether ``adapt`` also sets a diagonal mass matrix from the chains.
        NOTE: fitting a 5-D Gaussian (1000 chains, 2000 updates), this with
        ``num_steps=5`` ended 1.2–1.9 % from the MLE covariance (3 seeds),
        against about 0.5 % without it and 0.3–0.4 % with 2 or 3 steps (one
        seed each). The cause is not established.
    transforms
        Bijection from unconstrained to constrained values for sites with a
        constrained support, for models that do not record them, for example
        ``{"x": biject_to(constraints.positive)}``.

    Returns
    -------
    Kernel
        ``init``, ``step`` and ``adapt`` with :class:`HMCState` and
        :class:`HMCInfo`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ebm.models import EnergyModel
    >>> model = EnergyModel.from_energy_fn(
    ...     lambda p, x: 0.5 * jnp.sum((x - p["loc"]) ** 2), {"loc": jnp.ones(2)},
    ...     shape=2, domain=None)
    >>> kernel = hmc(model, step_size=0.5)
    >>> params = model.init_params()
    >>> state = kernel.init(jax.random.key(0), {"x": jnp.zeros(2)}, params)
    >>> state, info = kernel.step(jax.random.key(1), state, params)
    >>> state.position["x"].shape, int(info.num_steps)
    ((2,), 5)
    """
    settings = _HMCSettings(
        "HMC",
        step_size,
        num_steps,
        10,
        target_acceptance,
        adaptation_rate,
        step_size_jitter,
        adapt_mass_matrix,
    )
    return _model_kernel(model, settings, transforms)


def nuts(
    model: EnergyModel,
    *,
    step_size: float = 0.1,
    max_tree_depth: int = 10,
    target_acceptance: float = HMC_TARGET_ACCEPTANCE,
    adaptation_rate: float = ADAPTATION_RATE,
    step_size_jitter: float = 0.0,
    adapt_mass_matrix: bool = False,
    transforms: Mapping[str, Transform] | None = None,
) -> Kernel:
    """Build the NUTS fantasy-particle kernel of a continuous model.

    Like :func:`hmc`, but each step is one NumPyro NUTS transition, whose
    trajectory length is chosen by the no-U-turn criterion, so the step size
    needs no jitter (0 by default). Under ``jax.vmap`` every chain waits for
    the deepest tree of the batch.

    Parameters
    ----------
    model
        An energy model whose sites are all continuous.
    step_size, target_acceptance, adaptation_rate, step_size_jitter
        As for :func:`hmc`.
    max_tree_depth
        Maximum depth of the trajectory tree (at most 2^depth − 1 leapfrog
        steps).
    adapt_mass_matrix, transforms
        As for :func:`hmc`.

    Returns
    -------
    Kernel
        ``init``, ``step`` and ``adapt`` with :class:`HMCState` and
        :class:`HMCInfo`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ebm.models import EnergyModel
    >>> model = EnergyModel.from_energy_fn(
    ...     lambda p, x: 0.5 * jnp.sum(x**2), {}, shape=3, domain=None)
    >>> kernel = nuts(model, step_size=0.5, max_tree_depth=4)
    >>> state = kernel.init(jax.random.key(0), {"x": jnp.zeros(3)}, {})
    >>> state, info = kernel.step(jax.random.key(1), state, {})
    >>> state.position["x"].shape
    (3,)
    """
    settings = _HMCSettings(
        "NUTS",
        step_size,
        None,
        max_tree_depth,
        target_acceptance,
        adaptation_rate,
        step_size_jitter,
        adapt_mass_matrix,
    )
    return _model_kernel(model, settings, transforms)


class EnergyHMC(EnergyMCMCKernel):
    """HMC fantasy particles as a ``numpyro.infer.MCMCKernel``; see :func:`hmc`.

    ``numpyro.infer.MCMC`` does not call ``Kernel.adapt``, so the step size
    stays at ``step_size`` there.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from numpyro.infer import MCMC
    >>> from numpyro_ebm.models import EnergyModel
    >>> model = EnergyModel.from_energy_fn(
    ...     lambda p, x: 0.5 * jnp.sum(x**2), {}, shape=2, domain=None)
    >>> mcmc = MCMC(EnergyHMC(model, step_size=0.5), num_warmup=5, num_samples=10,
    ...             progress_bar=False)
    >>> mcmc.run(jax.random.key(0), {})
    >>> mcmc.get_samples()["x"].shape
    (10, 2)
    """

    def __init__(self, model: EnergyModel, **kwargs: Any):
        super().__init__(model, hmc(model, **kwargs))


class EnergyNUTS(EnergyMCMCKernel):
    """NUTS fantasy particles as a ``numpyro.infer.MCMCKernel``; see :func:`nuts`.

    ``numpyro.infer.MCMC`` does not call ``Kernel.adapt``, so the step size
    stays at ``step_size`` there.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from numpyro.infer import MCMC
    >>> from numpyro_ebm.models import EnergyModel
    >>> model = EnergyModel.from_energy_fn(
    ...     lambda p, x: 0.5 * jnp.sum(x**2), {}, shape=2, domain=None)
    >>> kernel = EnergyNUTS(model, step_size=0.5, max_tree_depth=3)
    >>> mcmc = MCMC(kernel, num_warmup=5, num_samples=10, progress_bar=False)
    >>> mcmc.run(jax.random.key(0), {})
    >>> mcmc.get_samples()["x"].shape
    (10, 2)
    """

    def __init__(self, model: EnergyModel, **kwargs: Any):
        super().__init__(model, nuts(model, **kwargs))
