r"""Exact pseudo-log-likelihood of discrete energy models.

The pseudo-likelihood replaces p_θ(x) by the product of the conditionals of
its elements,

.. math::

    \log \mathrm{PL}_θ(x) = \sum_k \log p_θ(x_k \mid x_{-k}),
    \qquad
    \log p_θ(x_k \mid x_{-k}) = −E_θ(x) − \log \sum_{a} \exp(−E_θ(x_{k \leftarrow a})),

where k runs over every element of every visible site, a over the domain of
element k, and x_{k←a} is x with element k set to a. No conditional needs
Z_θ, so the pseudo-likelihood is a tractable score for models too large to
enumerate.

Every term is computed, so the result is deterministic. scikit-learn 1.9's
``BernoulliRBM.score_samples`` instead flips one randomly chosen unit per
example and multiplies its term by the number of units, which is an unbiased
but noisy estimate of the same sum.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_ebm.estimators.exact import _check_chunk_size
from numpyro_ebm.models.energy import EnergyModel
from numpyro_ebm.models.rbm import BernoulliRBM
from numpyro_ebm.models.sites import Site
from numpyro_ebm.models.validation import check_weights
from numpyro_ebm.types import Array, ArrayLike, Configuration, Params


def pseudo_log_likelihood(
    model: EnergyModel,
    params: Params,
    data: Configuration | ArrayLike,
    weights: ArrayLike | None = None,
    *,
    per_site: bool = False,
    chunk_size: int = 64,
) -> Array:
    r"""Compute the exact pseudo-log-likelihood of ``data``, in nats per example.

    With normalised weights w_i (equal by default), the average is

    .. math::

        \overline{\log \mathrm{PL}} = \sum_i w_i \sum_k
            \log p_θ(x_{ik} \mid x_{i,-k}).

    For a ``BernoulliRBM``, flipping visible unit k changes the hidden
    pre-activations by (1 − 2 v_k) W_k, so the free-energy difference

    .. math::

        F(v) − F(v^{(k)}) = (1 − 2 v_k) b_k + \sum_j \left[
            \mathrm{softplus}(a_j + (1 − 2 v_k) W_{kj}) − \mathrm{softplus}(a_j)
        \right],
        \qquad a = c + vᵀW,

    gives log p(v_k | v_−k) = −softplus(F(v) − F(v^{(k)})) for every k at a
    cost of O(n·m) per example. Any other model takes the generic path, which
    evaluates ``model.energy`` on every x_{k←a}: n·q energy evaluations per
    example for n visible elements with q values each. That is fine for small
    n, and for models whose latent sites are summed out by enumeration each
    evaluation also pays for that enumeration.

    The result is differentiable with respect to ``params``.

    Parameters
    ----------
    model
        Energy model whose visible sites are discrete (binary, spin or
        categorical). Latent sites are summed out by ``model.energy``.
    params
        Unconstrained parameters, as from ``model.init_params()``.
    data
        Visible configurations with a leading batch axis: a dict keyed by site
        name, or one array when the model has a single visible site. Validated
        by ``model.as_configuration``.
    weights
        Non-negative weight of each example, shape ``(batch,)``; equal weights
        by default. Must be None when ``per_site=True``.
    per_site
        If True, return the per-example, per-element conditionals
        log p_θ(x_ik | x_i,−k) of shape ``(batch, n)`` instead of the weighted
        average over examples of their sum. The elements follow the order of
        ``model.visible_sites``, each site flattened in row-major order.
    chunk_size
        Number of examples evaluated at once. Memory grows as ``chunk_size``
        times n·m values for an RBM and ``chunk_size`` times n²·q values (plus
        what ``model.energy`` needs for n·q configurations) on the generic path.

    Returns
    -------
    Array
        The scalar average pseudo-log-likelihood, or the ``(batch, n)`` array of
        conditionals when ``per_site=True``.

    Raises
    ------
    ValueError
        If a visible site is real-valued, if ``data``, ``weights`` or
        ``chunk_size`` is invalid, or if ``weights`` is given with
        ``per_site=True``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from numpyro_ebm.models import BernoulliRBM
    >>> rbm = BernoulliRBM(3, 2, init_scale=0.0)
    >>> data = jnp.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    >>> pll = pseudo_log_likelihood(rbm, rbm.init_params(), data)
    >>> round(float(pll), 4)  # every conditional is 1/2, so 3 log(1/2)
    -2.0794
    >>> pseudo_log_likelihood(rbm, rbm.init_params(), data, per_site=True).shape
    (2, 3)
    """
    chunk_size = _check_chunk_size(chunk_size)
    _check_discrete_sites(model)
    x = model.as_configuration(data, name="data")
    batch_size = int(next(iter(x.values())).shape[0])
    if per_site and weights is not None:
        raise ValueError(
            "`weights` must be None when `per_site=True`, because the per-example "
            "values are returned unweighted. Weight them after the call."
        )
    probs = check_weights(weights, batch_size)
    probs = probs / probs.sum()

    conditionals = _conditionals(model, params, x, chunk_size)
    if per_site:
        return conditionals
    per_example = jnp.sum(conditionals, axis=1)
    return jnp.sum(jnp.asarray(probs, dtype=per_example.dtype) * per_example)


@partial(jax.jit, static_argnames=("model", "chunk_size"))
def _conditionals(
    model: EnergyModel, params: Params, x: Configuration, chunk_size: int
) -> Array:
    """Return the ``(batch, n)`` conditionals, ``chunk_size`` examples at a time."""
    if _has_rbm_free_energy(model):
        return jax.lax.map(
            lambda v: _rbm_conditionals(model, params, v),
            x["v"],
            batch_size=chunk_size,
        )
    sites = model.visible_sites
    return jax.lax.map(
        lambda row: _generic_conditionals(model, params, sites, row),
        _flatten(sites, x),
        batch_size=chunk_size,
    )


def _check_discrete_sites(model: EnergyModel) -> None:
    real = [site.name for site in model.visible_sites if not site.is_discrete]
    if real:
        raise ValueError(
            f"the pseudo-likelihood needs discrete visible sites, but the sites "
            f"{real} of `model` are real-valued. Make them binary, spin or "
            "categorical."
        )


def _has_rbm_free_energy(model: EnergyModel) -> bool:
    """Return whether ``model`` is an RBM with the closed-form free energy."""
    return (
        isinstance(model, BernoulliRBM)
        and type(model).marginal_energy is BernoulliRBM.marginal_energy
        and type(model).free_energy is BernoulliRBM.free_energy
    )


# -- BernoulliRBM: one flip per visible unit ----------------------------------------


def _rbm_conditionals(model: BernoulliRBM, params: Params, v: Array) -> Array:
    """Return log p(v_k | v_−k) for every unit k of one visible configuration."""
    constrained = model.constrain(params)
    sign = 1.0 - 2.0 * v
    logits = model.hidden_logits(params, v)
    flipped = logits + sign[:, None] * constrained["weights"]
    softplus_change = jax.nn.softplus(flipped) - jax.nn.softplus(logits)
    # F(v) − F(v with unit k flipped), one entry per unit k.
    free_energy_gap = sign * constrained["visible_bias"] + jnp.sum(
        softplus_change, axis=1
    )
    return -jax.nn.softplus(free_energy_gap)


# -- generic path: the energy at every value of every element -----------------------


def _domain_table(sites: tuple[Site, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Return the per-element domain values, padded to the largest domain, and a mask.

    Padding repeats the first value of the domain, so the energy is evaluated
    only at valid configurations. The mask marks the padded entries as False.
    """
    rows = [site.domain for site in sites for _ in range(site.size)]
    width = max(len(row) for row in rows)
    values = np.empty((len(rows), width), dtype=np.float64)
    valid = np.zeros((len(rows), width), dtype=bool)
    for k, row in enumerate(rows):
        values[k] = row[0]
        values[k, : len(row)] = row
        valid[k, : len(row)] = True
    return values, valid


def _flatten(sites: tuple[Site, ...], x: Configuration) -> Array:
    """Concatenate the visible sites into a ``(batch, n)`` float array."""
    dtype = jnp.result_type(float)
    return jnp.concatenate(
        [x[s.name].reshape(x[s.name].shape[0], -1).astype(dtype) for s in sites],
        axis=1,
    )


def _unflatten(sites: tuple[Site, ...], flat: Array) -> dict[str, Array]:
    """Invert :func:`_flatten`, casting categorical sites back to int32."""
    config = {}
    start = 0
    for site in sites:
        values = flat[:, start : start + site.size].reshape((-1,) + site.shape)
        config[site.name] = values.astype(jnp.int32) if site.is_categorical else values
        start += site.size
    return config


def _generic_conditionals(
    model: EnergyModel, params: Params, sites: tuple[Site, ...], row: Array
) -> Array:
    """Return log p(x_k | x_−k) for every element k of one flat configuration."""
    table, mask = _domain_table(sites)
    num_elements, width = table.shape
    values = jnp.asarray(table, dtype=row.dtype)
    valid = jnp.asarray(mask)

    # candidates[k, a] is the row with element k set to its a-th domain value.
    diagonal = jnp.eye(num_elements, dtype=bool)[:, None, :]
    candidates = jnp.where(diagonal, values[:, :, None], row[None, None, :])
    candidates = candidates.reshape(num_elements * width, num_elements)
    energies = model.energy(params, _unflatten(sites, candidates))
    logits = jnp.where(valid, -energies.reshape(num_elements, width), -jnp.inf)

    # The candidate that keeps the observed value has the energy E(x).
    observed = jnp.argmax((values == row[:, None]) & valid, axis=1)
    observed_logits = jnp.take_along_axis(logits, observed[:, None], axis=1)[:, 0]
    return observed_logits - jax.nn.logsumexp(logits, axis=1)
