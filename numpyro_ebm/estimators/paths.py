r"""Annealing paths from a tractable base model to a target energy model.

A path is the sequence of unnormalised densities p*_β, β ∈ [0, 1], that AIS
walks along, with a kernel that leaves each p_β invariant and the base's exact
sampler and log normaliser.

Two paths are provided:

- :func:`rbm_path` for RBMs (Salakhutdinov & Murray, ICML 2008): the
  intermediate model is itself an RBM with parameters (βW, (1−β)b_A + βb, βc),
  so block Gibbs samples it and the hidden layer is summed out analytically,

  .. math::

      \log p^*_β(v) = (1-β)\, b_A·v + β\, b·v + \sum_j \mathrm{softplus}(β(c_j + (vW)_j)).

- :func:`geometric_path` for any discrete energy model: the geometric mean
  p*_β = p_base^{1−β} p*_target^β of a product (independent-units) base and the
  target, sampled by any kernel that needs only the energy.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from numpyro_ebm.kernels.base import Kernel
from numpyro_ebm.kernels.block_gibbs import block_gibbs
from numpyro_ebm.kernels.site_gibbs import site_gibbs
from numpyro_ebm.models.energy import EnergyModel
from numpyro_ebm.models.rbm import BernoulliRBM
from numpyro_ebm.models.sites import Site
from numpyro_ebm.types import Array, ArrayLike, Configuration, Params, PRNGKey


class AnnealingPath(NamedTuple):
    """The ingredients of annealed importance sampling.

    Attributes
    ----------
    log_density
        ``log_density(params, beta, x) -> (batch,)``: log p*_β of a batch of
        visible configurations.
    kernel
        A kernel whose ``params`` argument is ``kernel_params(params, beta)``.
    kernel_params
        Map from the target's parameters and β to the kernel's parameters.
    sample_base
        ``sample_base(rng_key, params)``: one exact sample of p_0.
    log_z_base
        ``log_z_base(params)``: log Z_0, in nats.
    """

    log_density: Callable[[Params, Array, Configuration], Array]
    kernel: Kernel
    kernel_params: Callable[[Params, Array], Any]
    sample_base: Callable[[PRNGKey, Params], Configuration]
    log_z_base: Callable[[Params], Array]


def rbm_path(
    rbm: BernoulliRBM, base_visible_bias: ArrayLike | None = None
) -> AnnealingPath:
    """Build the RBM path from independent visible units to the RBM.

    Parameters
    ----------
    rbm
        The target RBM.
    base_visible_bias
        Visible biases b_A of the base model. Zeros (the uniform distribution)
        by default; :func:`~numpyro_ebm.models.rbm.base_rate_bias` of the
        training data gives the base-rate model of Salakhutdinov & Murray,
        which shortens the path.

    Examples
    --------
    >>> from numpyro_ebm.models import BernoulliRBM
    >>> path = rbm_path(BernoulliRBM(4, 2))
    >>> round(float(path.log_z_base({})), 4)  # 6 log 2
    4.1589
    """
    num_visible, num_hidden = rbm.num_visible, rbm.num_hidden
    if base_visible_bias is None:
        base_bias = jnp.zeros(num_visible)
    else:
        base_bias = jnp.asarray(base_visible_bias, dtype=float)
        if base_bias.shape != (num_visible,) or not bool(
            jnp.all(jnp.isfinite(base_bias))
        ):
            raise ValueError(
                f"`base_visible_bias` must be {num_visible} finite values; got "
                f"shape {base_bias.shape}."
            )

    def kernel_params(params, beta):
        p = rbm.constrain(params)
        return {
            "weights": beta * p["weights"],
            "visible_bias": (1.0 - beta) * base_bias + beta * p["visible_bias"],
            "hidden_bias": beta * p["hidden_bias"],
        }

    def log_density(params, beta, x):
        return -rbm.free_energy(kernel_params(params, beta), x["v"])

    def sample_base(rng_key, params):
        v = jax.random.bernoulli(rng_key, jax.nn.sigmoid(base_bias))
        return {"v": v.astype(base_bias.dtype)}

    def log_z_base(params):
        # At β = 0 the hidden units are free: each contributes a factor 2.
        return jnp.sum(jax.nn.softplus(base_bias)) + num_hidden * jnp.log(2.0)

    return AnnealingPath(
        log_density, block_gibbs(rbm), kernel_params, sample_base, log_z_base
    )


def _domain_index(x: Array, site: Site) -> Array:
    """Index of each element's value in the site's domain."""
    domain = jnp.asarray(site.domain)
    return jnp.argmax(x[..., None] == domain, axis=-1)


def geometric_path(
    model: EnergyModel,
    base_logits: dict[str, ArrayLike] | None = None,
    kernel_factory: Callable[..., Kernel] = site_gibbs,
) -> AnnealingPath:
    """Build the geometric path from independent units to a discrete model.

    The base model is a product of categorical distributions over each
    element's domain with log-probabilities ``base_logits`` (uniform by
    default); the intermediate energies are (1 − β) E_base + β E_target.

    Parameters
    ----------
    model
        The target model; its visible sites must be discrete. Latent sites are
        summed out by ``model.energy``.
    base_logits
        Site name to logits of shape ``site.shape + (len(site.domain),)``.
        :func:`base_rate_logits` fits them to data.
    kernel_factory
        ``kernel_factory(path_model)`` returns a kernel for the intermediate
        model; it must need only the energy (single-site Gibbs by default).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from numpyro_ebm.models import EnergyModel
    >>> model = EnergyModel.from_energy_fn(lambda p, x: -p["b"] @ x, {"b": jnp.ones(3)}, 3)
    >>> path = geometric_path(model)
    >>> round(float(path.log_z_base(model.init_params())), 4)  # 3 log 2
    2.0794
    """
    sites = model.visible_sites
    for site in sites:
        if not site.is_discrete:
            raise TypeError(
                f"the geometric path needs discrete visible sites; `{site.name}` is "
                "real-valued."
            )
    logits = _check_base_logits(base_logits, sites)
    param_names = model.param_names

    def base_energy(x):
        total = 0.0
        for site in sites:
            index = _domain_index(x[site.name], site)
            chosen = jnp.take_along_axis(
                jnp.broadcast_to(
                    logits[site.name], index.shape + logits[site.name].shape[-1:]
                ),
                index[..., None],
                axis=-1,
            )[..., 0]
            total = total + jnp.sum(chosen.reshape(chosen.shape[0], -1), axis=-1)
        return -total

    def path_energy(path_params, x):
        target = {name: path_params["target_" + name] for name in param_names}
        beta = path_params["beta"]
        return (1.0 - beta) * base_energy(x) + beta * model.energy(target, x)

    init = {"beta": jnp.zeros(())}
    init.update({"target_" + k: v for k, v in model.init_params().items()})
    path_model = EnergyModel(path_energy, init, sites)
    kernel = kernel_factory(path_model)

    def kernel_params(params, beta):
        flat = {"target_" + name: value for name, value in params.items()}
        return {"beta": jnp.asarray(beta), **flat}

    def log_density(params, beta, x):
        return -path_energy(kernel_params(params, beta), x)

    def sample_base(rng_key, params):
        keys = jax.random.split(rng_key, len(sites))
        sample = {}
        for key, site in zip(keys, sites, strict=True):
            index = jax.random.categorical(key, logits[site.name])
            sample[site.name] = jnp.asarray(site.domain)[index]
        return sample

    def log_z_base(params):
        return sum(jnp.sum(jax.nn.logsumexp(logits[s.name], axis=-1)) for s in sites)

    return AnnealingPath(log_density, kernel, kernel_params, sample_base, log_z_base)


def _check_base_logits(base_logits, sites) -> dict[str, Array]:
    logits = {}
    for site in sites:
        shape = site.shape + (len(site.domain),)
        if base_logits is None or site.name not in base_logits:
            logits[site.name] = jnp.zeros(shape)
            continue
        value = jnp.asarray(base_logits[site.name], dtype=float)
        if value.shape != shape or not bool(jnp.all(jnp.isfinite(value))):
            raise ValueError(
                f"`base_logits[{site.name!r}]` must be finite with shape {shape}; got "
                f"shape {value.shape}."
            )
        logits[site.name] = value
    return logits


def base_rate_logits(
    model: EnergyModel, data, weights=None, pseudocount: float = 1.0
) -> dict[str, Array]:
    """Fit the product base model of :func:`geometric_path` to data marginals.

    Returns log-frequencies of each value of each element, with ``pseudocount``
    added to every count so that no value has probability zero.

    Examples
    --------
    >>> import numpy as np
    >>> from numpyro_ebm.models import EnergyModel
    >>> model = EnergyModel.from_energy_fn(lambda p, x: 0.0 * x.sum(), {}, 2)
    >>> logits = base_rate_logits(model, np.array([[1, 0], [1, 1]]), pseudocount=0.5)
    >>> [round(float(p), 3) for p in np.exp(logits["x"][0])]
    [0.167, 0.833]
    """
    from numpyro_ebm.models.validation import check_weights

    x = model.as_configuration(data, name="data")
    count = jax.tree.leaves(x)[0].shape[0]
    w = jnp.asarray(check_weights(weights, count), dtype=float)
    logits = {}
    for site in model.visible_sites:
        onehot = jax.nn.one_hot(_domain_index(x[site.name], site), len(site.domain))
        counts = jnp.tensordot(w, onehot, axes=1) + pseudocount
        logits[site.name] = jnp.log(counts / counts.sum(axis=-1, keepdims=True))
    return logits
