r"""Gibbs kernels for models with both discrete and continuous sites.

:func:`mixed_gibbs` alternates two exact updates, each of which leaves
p_θ(x_d, x_c) invariant, so their composition does too:

1. the discrete sites x_d given the continuous ones. A model whose only
   discrete site is a binary hidden layer with ``hidden_logits`` (an RBM)
   gets a block draw from that closed-form conditional. Any other model gets
   a single-site Gibbs sweep whose conditionals

   .. math::

       p(x_k = a \mid x_{-k}) ∝ \exp(−E_θ(x_{k \leftarrow a}))

   come from the energy alone, one evaluation per value a;
2. the continuous sites x_c given x_d: one HMC, NUTS or MALA transition in
   unconstrained coordinates at the potential U_θ(z_c; x_d).

A site counts as continuous when its ``domain`` is ``None``.

:func:`gaussian_block_gibbs` is the block Gibbs sampler of the
Gaussian–Bernoulli RBM: h | v is a product of Bernoullis and v | h is Gaussian.
"""

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions.transforms import Transform

from numpyro_ebm.kernels.base import EnergyMCMCKernel, Kernel, random_position
from numpyro_ebm.kernels.hmc import (
    ADAPTATION_RATE,
    HMC_STEP_SIZE_JITTER,
    HMC_TARGET_ACCEPTANCE,
    _check_adaptation,
    _check_potential,
    _check_step_size,
    _hamiltonian_sampler,
    _HMCSettings,
    _site_transforms,
    _UnconstrainedTarget,
)
from numpyro_ebm.kernels.langevin import MALA_TARGET_ACCEPTANCE, _mala_sampler
from numpyro_ebm.models.energy import EnergyModel
from numpyro_ebm.models.sites import BINARY
from numpyro_ebm.types import Array, Configuration, Params, PRNGKey

CONTINUOUS_KERNELS = ("hmc", "nuts", "mala")


# -- Gaussian–Bernoulli block Gibbs ----------------------------------------------------


class GaussianBlockGibbsState(NamedTuple):
    """State of one block Gibbs chain of a Gaussian–Bernoulli RBM.

    Attributes
    ----------
    position
        Visible configuration ``{"v": v}``.
    hidden
        Hidden configuration drawn in the last half-sweep.
    """

    position: dict[str, Array]
    hidden: Array


class GaussianBlockGibbsInfo(NamedTuple):
    """Per-step diagnostics of Gaussian–Bernoulli block Gibbs.

    Attributes
    ----------
    hidden_activation
        Mean of p(h_j = 1 | v) over the hidden units, before the step's draw.
    """

    hidden_activation: Array


def gaussian_block_gibbs(model: EnergyModel) -> Kernel:
    """Build the block Gibbs kernel of a Gaussian–Bernoulli RBM.

    One step draws h ~ p(h | v), a product of Bernoullis, then
    v ~ N(b + W h, diag σ²).

    Parameters
    ----------
    model
        A model with ``hidden_logits(params, v)``, ``visible_mean(params, h)``
        and ``visible_variance(params)``, such as
        :class:`~numpyro_ebm.models.gaussian.GaussianBernoulliRBM`.

    Returns
    -------
    Kernel
        Pure ``init`` and ``step`` with :class:`GaussianBlockGibbsState`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ebm.models.gaussian import GaussianBernoulliRBM
    >>> rbm = GaussianBernoulliRBM(3, 2)
    >>> kernel = gaussian_block_gibbs(rbm)
    >>> params = rbm.init_params()
    >>> state = kernel.init(jax.random.key(0), {"v": jnp.zeros(3)}, params)
    >>> state, info = kernel.step(jax.random.key(1), state, params)
    >>> state.position["v"].shape, state.hidden.shape
    ((3,), (2,))
    """
    for method in ("hidden_logits", "visible_mean", "visible_variance"):
        if not callable(getattr(model, method, None)):
            raise TypeError(
                "Gaussian block Gibbs needs a model with `hidden_logits`, "
                "`visible_mean` and `visible_variance` (such as "
                f"GaussianBernoulliRBM); {type(model).__name__} has no `{method}`."
            )
    name = model.visible_sites[0].name

    def sample_hidden(rng_key, v, params):
        probs = jax.nn.sigmoid(model.hidden_logits(params, v[None])[0])
        return jax.random.bernoulli(rng_key, probs).astype(v.dtype), probs

    def init(
        rng_key: PRNGKey, position: Configuration, params: Params
    ) -> GaussianBlockGibbsState:
        v = jnp.asarray(position[name], dtype=float)
        hidden, _ = sample_hidden(rng_key, v, params)
        return GaussianBlockGibbsState({name: v}, hidden)

    def step(
        rng_key: PRNGKey, state: GaussianBlockGibbsState, params: Params
    ) -> tuple[GaussianBlockGibbsState, GaussianBlockGibbsInfo]:
        key_hidden, key_visible = jax.random.split(rng_key)
        v = state.position[name]
        hidden, probs = sample_hidden(key_hidden, v, params)
        mean = model.visible_mean(params, hidden[None])[0]
        scale = jnp.sqrt(model.visible_variance(params))
        v_new = mean + scale * jax.random.normal(key_visible, v.shape)
        info = GaussianBlockGibbsInfo(jnp.mean(probs))
        return GaussianBlockGibbsState({name: v_new}, hidden), info

    return Kernel(init, step)


class GaussianBlockGibbs(EnergyMCMCKernel):
    """Gaussian–Bernoulli block Gibbs as a ``numpyro.infer.MCMCKernel``.

    See :func:`gaussian_block_gibbs`.

    Examples
    --------
    >>> import jax
    >>> from numpyro.infer import MCMC
    >>> from numpyro_ebm.models.gaussian import GaussianBernoulliRBM
    >>> rbm = GaussianBernoulliRBM(3, 2)
    >>> mcmc = MCMC(GaussianBlockGibbs(rbm), num_warmup=5, num_samples=10,
    ...             progress_bar=False)
    >>> mcmc.run(jax.random.key(0), rbm.init_params())
    >>> mcmc.get_samples()["v"].shape
    (10, 3)
    """

    def __init__(self, model: EnergyModel):
        super().__init__(model, gaussian_block_gibbs(model))


# -- Metropolis-within-Gibbs for mixed models ------------------------------------------


class MixedGibbsState(NamedTuple):
    """State of one chain of :func:`mixed_gibbs`.

    Attributes
    ----------
    position
        Visible sites: constrained values of the continuous ones and the
        values of the discrete ones.
    discrete
        Every discrete site, visible and latent.
    continuous
        State of the continuous kernel (:class:`~numpyro_ebm.kernels.hmc.HMCState`
        or :class:`~numpyro_ebm.kernels.langevin.MALAState`).
    """

    position: dict[str, Array]
    discrete: dict[str, Array]
    continuous: Any


class MixedGibbsInfo(NamedTuple):
    """Per-step diagnostics of :func:`mixed_gibbs`.

    Attributes
    ----------
    acceptance_rate
        Acceptance probability of the continuous transition.
    step_size
        Step size of the continuous transition.
    flip_rate
        Fraction of discrete elements whose value changed.
    """

    acceptance_rate: Array
    step_size: Array
    flip_rate: Array


def _closed_form_hidden(model: EnergyModel) -> str | None:
    """Return the name of a binary hidden layer that ``hidden_logits`` samples."""
    discrete = [site for site in model.sites if site.is_discrete]
    if not callable(getattr(model, "hidden_logits", None)):
        return None
    if len(discrete) != 1 or len(model.visible_sites) != 1:
        return None
    hidden = discrete[0]
    if hidden.name in model.visible_names or tuple(hidden.domain) != BINARY:
        return None
    return hidden.name


def _discrete_sweep(model: EnergyModel):
    """Return ``sweep(rng_key, discrete, continuous, params)`` over discrete elements.

    ``continuous`` contains constrained values. Each element is redrawn from its
    conditional given everything else, computed from the joint energy.
    """
    sites = tuple(site for site in model.sites if site.is_discrete)
    width = max(len(site.domain) for site in sites)
    values = np.zeros((sum(site.size for site in sites), width), np.float32)
    valid = np.zeros(values.shape, bool)
    offsets = np.cumsum([0] + [site.size for site in sites])
    for site, start, stop in zip(sites, offsets[:-1], offsets[1:], strict=True):
        values[start:stop, : len(site.domain)] = site.domain
        valid[start:stop, : len(site.domain)] = True
    values, valid = jnp.asarray(values), jnp.asarray(valid)

    def unflatten(flat):
        config = {}
        for site, start, stop in zip(sites, offsets[:-1], offsets[1:], strict=True):
            block = flat[..., start:stop].reshape(flat.shape[:-1] + site.shape)
            config[site.name] = block.astype(
                jnp.int32 if site.is_categorical else float
            )
        return config

    def sweep(rng_key, discrete, continuous, params):
        flat = jnp.concatenate(
            [discrete[site.name].reshape(-1).astype(float) for site in sites]
        )
        tiled = jax.tree.map(
            lambda v: jnp.broadcast_to(v, (width,) + v.shape), continuous
        )

        def update(k, carry):
            flat, key = carry
            key, key_draw = jax.random.split(key)
            candidates = jnp.tile(flat, (width, 1)).at[:, k].set(values[k])
            energies = model.joint_energy(params, {**tiled, **unflatten(candidates)})
            logits = jnp.where(valid[k], -energies, -jnp.inf)
            choice = jax.random.categorical(key_draw, logits)
            return flat.at[k].set(values[k, choice]), key

        new_flat, _ = jax.lax.fori_loop(0, flat.shape[0], update, (flat, rng_key))
        return unflatten(new_flat), jnp.mean(new_flat != flat)

    return sweep


def _hidden_block_draw(model: EnergyModel, hidden_name: str):
    """Return ``draw(rng_key, discrete, continuous, params)`` of the hidden layer.

    The binary hidden layer is drawn at once from σ(hidden_logits(v)).
    """
    visible = model.visible_sites[0].name

    def draw(rng_key, discrete, continuous, params):
        logits = model.hidden_logits(params, continuous[visible][None])[0]
        old = discrete[hidden_name]
        new = jax.random.bernoulli(rng_key, jax.nn.sigmoid(logits)).astype(old.dtype)
        return {hidden_name: new}, jnp.mean(new != old)

    return draw


def mixed_gibbs(
    model: EnergyModel,
    continuous: str = "hmc",
    *,
    step_size: float = 0.1,
    num_steps: int = 5,
    max_tree_depth: int = 10,
    target_acceptance: float | None = None,
    adaptation_rate: float = ADAPTATION_RATE,
    transforms: Mapping[str, Transform] | None = None,
) -> Kernel:
    """Build a Gibbs kernel over discrete sites and HMC, NUTS or MALA over the rest.

    Parameters
    ----------
    model
        An energy model with at least one discrete and one continuous site.
    continuous
        Kernel of the continuous sites: ``"hmc"``, ``"nuts"`` or ``"mala"``.
    step_size
        Initial step size of the continuous kernel, adapted by ``adapt``.
    num_steps
        Leapfrog steps of HMC.
    max_tree_depth
        Maximum tree depth of NUTS.
    target_acceptance
        Target acceptance of the step-size controller; 0.8 for HMC and NUTS
        and 0.574 for MALA by default.
    adaptation_rate
        Gain of the controller on the log step size; 0 keeps it fixed.
    transforms
        Bijections for constrained continuous sites, as for
        :func:`~numpyro_ebm.kernels.hmc.hmc`.

    Returns
    -------
    Kernel
        ``init``, ``step`` and ``adapt`` with :class:`MixedGibbsState` and
        :class:`MixedGibbsInfo`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ebm.models.gaussian import GaussianBernoulliRBM
    >>> rbm = GaussianBernoulliRBM(3, 2)
    >>> kernel = mixed_gibbs(rbm, "mala", step_size=0.5)
    >>> params = rbm.init_params()
    >>> state = kernel.init(jax.random.key(0), {"v": jnp.zeros(3)}, params)
    >>> state, info = kernel.step(jax.random.key(1), state, params)
    >>> sorted(state.position), sorted(state.discrete)
    (['v'], ['h'])
    """
    if continuous not in CONTINUOUS_KERNELS:
        raise ValueError(
            f"`continuous` must be one of {CONTINUOUS_KERNELS}; got {continuous!r}."
        )
    discrete_sites = tuple(site for site in model.sites if site.is_discrete)
    continuous_sites = tuple(site for site in model.sites if not site.is_discrete)
    if not discrete_sites or not continuous_sites:
        kind = "discrete" if not discrete_sites else "continuous"
        raise TypeError(
            f"mixed_gibbs needs discrete and continuous sites; {model!r} has no "
            f"{kind} site. Use `site_gibbs` for discrete models and `hmc` for "
            "continuous ones."
        )
    if target_acceptance is None:
        mala_kind = continuous == "mala"
        target_acceptance = (
            MALA_TARGET_ACCEPTANCE if mala_kind else HMC_TARGET_ACCEPTANCE
        )
    _check_step_size(step_size)
    _check_adaptation(target_acceptance, adaptation_rate)

    by_name = _site_transforms(model, continuous_sites, transforms)
    _check_potential(model, by_name)

    def potential_fn_gen(params, discrete):
        potential = model.potential_fn(params)
        return lambda z: potential({**z, **discrete})

    visible = set(model.visible_names)
    target = _UnconstrainedTarget(
        potential_fn_gen=potential_fn_gen,
        sites=continuous_sites,
        transforms=by_name,
        visible=tuple(site.name for site in continuous_sites if site.name in visible),
    )
    if continuous == "mala":
        sampler = _mala_sampler(target, step_size, target_acceptance, adaptation_rate)
    else:
        settings = _HMCSettings(
            continuous.upper(),
            step_size,
            num_steps,
            max_tree_depth,
            target_acceptance,
            adaptation_rate,
            HMC_STEP_SIZE_JITTER if continuous == "hmc" else 0.0,
            False,
        )
        example_discrete = random_position(jax.random.key(0), discrete_sites)
        sampler = _hamiltonian_sampler(
            target, settings, (model.init_params(), example_discrete)
        )
    hidden_name = _closed_form_hidden(model)
    if hidden_name is None:
        update_discrete = _discrete_sweep(model)
    else:
        update_discrete = _hidden_block_draw(model, hidden_name)

    def constrained(state):
        z = state.z
        return {
            site.name: by_name[site.name](z[site.name]) for site in continuous_sites
        }

    def visible_discrete(discrete):
        return {name: value for name, value in discrete.items() if name in visible}

    def init(
        rng_key: PRNGKey, position: Configuration, params: Params
    ) -> MixedGibbsState:
        key_discrete, key_continuous = jax.random.split(rng_key)
        latent = tuple(site for site in discrete_sites if site.name not in visible)
        discrete = random_position(key_discrete, latent)
        for site in discrete_sites:
            if site.name in visible:
                dtype = jnp.int32 if site.is_categorical else float
                discrete[site.name] = jnp.asarray(position[site.name], dtype=dtype)
        state = sampler.init(key_continuous, position, (params, discrete))
        return MixedGibbsState(
            {**state.position, **visible_discrete(discrete)}, discrete, state
        )

    def step(
        rng_key: PRNGKey, state: MixedGibbsState, params: Params
    ) -> tuple[MixedGibbsState, MixedGibbsInfo]:
        key_discrete, key_continuous = jax.random.split(rng_key)
        values = constrained(state.continuous)
        changed, flip_rate = update_discrete(
            key_discrete, state.discrete, values, params
        )
        discrete = {**state.discrete, **changed}
        inner, inner_info = sampler.step(
            key_continuous, state.continuous, (params, discrete)
        )
        info = MixedGibbsInfo(
            inner_info.acceptance_rate, inner_info.step_size, flip_rate
        )
        position = {**inner.position, **visible_discrete(discrete)}
        return MixedGibbsState(position, discrete, inner), info

    def adapt(states: MixedGibbsState, infos: MixedGibbsInfo) -> MixedGibbsState:
        return states._replace(continuous=sampler.adapt(states.continuous, infos))

    return Kernel(init, step, adapt)


class MixedGibbs(EnergyMCMCKernel):
    """Mixed discrete–continuous Gibbs as a ``numpyro.infer.MCMCKernel``.

    See :func:`mixed_gibbs`. ``numpyro.infer.MCMC`` does not call
    ``Kernel.adapt``, so the step size stays at ``step_size`` there.

    Examples
    --------
    >>> import jax
    >>> from numpyro.infer import MCMC
    >>> from numpyro_ebm.models.gaussian import GaussianBernoulliRBM
    >>> rbm = GaussianBernoulliRBM(3, 2)
    >>> kernel = MixedGibbs(rbm, "mala", step_size=0.5)
    >>> mcmc = MCMC(kernel, num_warmup=5, num_samples=10, progress_bar=False)
    >>> mcmc.run(jax.random.key(0), rbm.init_params())
    >>> mcmc.get_samples()["v"].shape
    (10, 3)
    """

    def __init__(self, model: EnergyModel, continuous: str = "hmc", **kwargs: Any):
        super().__init__(model, mixed_gibbs(model, continuous, **kwargs))
