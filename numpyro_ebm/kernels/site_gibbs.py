r"""Single-site Gibbs sampling for any discrete energy model.

A sweep visits every element of every site (visible and latent) in order and
redraws it from its exact conditional

.. math::

    p(x_k = a \mid x_{-k}) ∝ \exp(−β E(x_{k \leftarrow a})),

obtained by evaluating the energy once per value ``a`` of the element's
domain. The kernel needs nothing from the model but its energy, so it serves
any model written in NumPyro syntax or as a plain function. A sweep over n
elements with q values costs n·q energy evaluations, so models that expose
local fields have faster specialised kernels.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_ebm.kernels.base import (
    EnergyMCMCKernel,
    Kernel,
    check_inverse_temperature,
    random_position,
)
from numpyro_ebm.models.energy import EnergyModel
from numpyro_ebm.types import Array, Configuration, Params, PRNGKey


class SiteGibbsState(NamedTuple):
    """State of one single-site Gibbs chain.

    Attributes
    ----------
    position
        Visible configuration, keyed by site name.
    latent
        Latent configuration, keyed by site name (empty for fully visible
        models).
    """

    position: dict[str, Array]
    latent: dict[str, Array]


class SiteGibbsInfo(NamedTuple):
    """Per-sweep diagnostics of single-site Gibbs.

    Attributes
    ----------
    flip_rate
        Fraction of elements whose value changed during the sweep.
    """

    flip_rate: Array


def _domain_table(model: EnergyModel) -> tuple[np.ndarray, np.ndarray]:
    """Per-element domain values padded to the largest domain, and their mask."""
    rows = []
    for site in model.sites:
        if not site.is_discrete:
            raise TypeError(
                f"single-site Gibbs needs discrete sites; site `{site.name}` is "
                "real-valued."
            )
        rows.extend([site.domain] * site.size)
    width = max(len(row) for row in rows)
    values = np.zeros((len(rows), width), dtype=np.float32)
    valid = np.zeros((len(rows), width), dtype=bool)
    for i, row in enumerate(rows):
        values[i, : len(row)] = row
        valid[i, : len(row)] = True
    return values, valid


def site_gibbs(model: EnergyModel, inverse_temperature: float = 1.0) -> Kernel:
    """Build the single-site Gibbs kernel (sequential scan) of a discrete model.

    Parameters
    ----------
    model
        Any energy model whose sites are all discrete.
    inverse_temperature
        β: the kernel samples from p(x) ∝ exp(−β E(x)).

    Returns
    -------
    Kernel
        Pure ``init`` and ``step`` for one chain; a step is one sweep.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ebm.models import EnergyModel
    >>> model = EnergyModel.from_energy_fn(
    ...     lambda p, x: -p["j"] * x[0] * x[1], {"j": 1.0}, shape=2, domain=(-1.0, 1.0)
    ... )
    >>> kernel = site_gibbs(model)
    >>> state = kernel.init(jax.random.key(0), {"x": jnp.ones(2)}, model.init_params())
    >>> state, info = kernel.step(jax.random.key(1), state, model.init_params())
    >>> state.position["x"].shape
    (2,)
    """
    values, valid = _domain_table(model)
    values, valid = jnp.asarray(values), jnp.asarray(valid)
    sites = model.sites
    visible = set(model.visible_names)
    sizes = [site.size for site in sites]
    offsets = np.cumsum([0] + sizes)
    beta = check_inverse_temperature(inverse_temperature)

    def flatten(config):
        return jnp.concatenate(
            [config[s.name].reshape(-1).astype(float) for s in sites]
        )

    def unflatten(flat):
        config = {}
        for site, start, stop in zip(sites, offsets[:-1], offsets[1:], strict=True):
            dtype = jnp.int32 if site.is_categorical else flat.dtype
            config[site.name] = flat[..., start:stop].reshape(
                flat.shape[:-1] + site.shape
            )
            config[site.name] = config[site.name].astype(dtype)
        return config

    def update_element(k, carry):
        flat, rng_key, params = carry
        rng_key, key_draw = jax.random.split(rng_key)
        candidates = jnp.tile(flat, (values.shape[1], 1)).at[:, k].set(values[k])
        energies = model.joint_energy(params, unflatten(candidates))
        logits = jnp.where(valid[k], -beta * energies, -jnp.inf)
        choice = jax.random.categorical(key_draw, logits)
        return flat.at[k].set(values[k, choice]), rng_key, params

    latent_elements = np.concatenate(
        [
            np.arange(start, stop)
            for site, start, stop in zip(sites, offsets[:-1], offsets[1:], strict=True)
            if site.name not in visible
        ]
        or [np.zeros(0, dtype=int)]
    ).astype(np.int32)

    def init(
        rng_key: PRNGKey, position: Configuration, params: Params
    ) -> SiteGibbsState:
        # One Gibbs sweep over the latent elements draws them exactly from
        # p(latent | visible) when they are conditionally independent given the
        # visible sites, as in an RBM.
        key_latent, key_sweep = jax.random.split(rng_key)
        latent = random_position(key_latent, model.latent_sites)
        position = {name: jnp.asarray(value) for name, value in position.items()}
        if latent_elements.size == 0:
            return SiteGibbsState(position, latent)
        flat = flatten({**position, **latent})

        def body(i, carry):
            return update_element(jnp.asarray(latent_elements)[i], carry)

        carry = (flat, key_sweep, params)
        flat, _, _ = jax.lax.fori_loop(0, latent_elements.size, body, carry)
        config = unflatten(flat)
        return SiteGibbsState(position, {k: config[k] for k in latent})

    def step(
        rng_key: PRNGKey, state: SiteGibbsState, params: Params
    ) -> tuple[SiteGibbsState, SiteGibbsInfo]:
        flat = flatten({**state.position, **state.latent})
        new_flat, _, _ = jax.lax.fori_loop(
            0, flat.shape[0], update_element, (flat, rng_key, params)
        )
        config = unflatten(new_flat)
        position = {k: v for k, v in config.items() if k in visible}
        latent = {k: v for k, v in config.items() if k not in visible}
        info = SiteGibbsInfo(jnp.mean(new_flat != flat))
        return SiteGibbsState(position, latent), info

    return Kernel(init, step)


class SiteGibbs(EnergyMCMCKernel):
    """Single-site Gibbs as a ``numpyro.infer.MCMCKernel``; see :func:`site_gibbs`."""

    def __init__(self, model: EnergyModel, inverse_temperature: float = 1.0):
        super().__init__(model, site_gibbs(model, inverse_temperature))
