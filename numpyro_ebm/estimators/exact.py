"""Exact estimators for small discrete energy models, by enumeration of every state.

For p_θ(x) = exp(−E_θ(x)) / Z_θ over discrete sites, the normaliser and every
quantity derived from it are finite sums over configurations:

.. math::

    log Z_θ = log Σ_x exp(−E_θ(x)).

The configurations are visited in chunks of ``chunk_size`` integer codes (see
:func:`~numpyro_ebm.models.enumeration.decode_configurations`) inside
``jax.lax.scan``, so memory grows with the chunk size, not with the number of
states. Each chunk is reduced by a log-sum-exp and folded into a running value
with ``logaddexp``, so energies of any magnitude give finite results. The chunk
body is wrapped in ``jax.checkpoint``, so reverse-mode gradients recompute each
chunk instead of storing it.

These functions are the reference that sampling-based estimators and learning
rules are checked against. They are meant for up to about 2**22 states.
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from numpyro_ebm.models.energy import EnergyModel
from numpyro_ebm.models.enumeration import decode_configurations, num_configurations
from numpyro_ebm.models.sites import Site
from numpyro_ebm.models.validation import check_weights
from numpyro_ebm.types import Array, ArrayLike, Configuration, Params

# Time grows linearly with the state count: 2**22 hidden states of a 64 × 22 RBM took
# about 1 s with jax 0.12 on 2 CPU cores, so this keeps cheap energies to seconds.
MAX_EXACT_CONFIGURATIONS = 2**24


# -- argument checks ----------------------------------------------------------------


def _check_chunk_size(chunk_size: int) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer):
        raise ValueError(
            f"`chunk_size` must be a positive integer; got {chunk_size!r}."
        )
    if chunk_size < 1:
        raise ValueError(f"`chunk_size` must be a positive integer; got {chunk_size}.")
    return int(chunk_size)


def _check_dtype(dtype: Any) -> np.dtype | None:
    if dtype is None:
        return None
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(
            f"`dtype` must be a floating-point dtype such as float32; got {dtype}."
        )
    if jax.dtypes.canonicalize_dtype(dtype) != dtype:
        raise ValueError(
            f"`dtype` is {dtype} but 64-bit types are disabled in JAX; enable them "
            "with jax.config.update('jax_enable_x64', True) or pass dtype=None."
        )
    return dtype


def _check_sites(model: EnergyModel, sites: Sequence[str] | str) -> tuple[Site, ...]:
    names = [sites] if isinstance(sites, str) else list(sites)
    unknown = [name for name in names if name not in model.site_names]
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(
            f"`sites` must be a non-empty list of distinct site names from "
            f"{list(model.site_names)}; got {names}."
        )
    return tuple(site for site in model.sites if site.name in names)


def _count_configurations(sites: Sequence[Site]) -> int:
    count = num_configurations(sites)
    if count > MAX_EXACT_CONFIGURATIONS:
        raise ValueError(
            f"exact enumeration over the sites {[s.name for s in sites]} needs "
            f"{count} configurations, above MAX_EXACT_CONFIGURATIONS = "
            f"{MAX_EXACT_CONFIGURATIONS}; estimate log Z by annealed importance "
            "sampling instead (numpyro_ebm.estimators.ais and ais_log_likelihood)."
        )
    return count


def _check_weights(weights: ArrayLike | None, batch_size: int) -> np.ndarray:
    """Validate ``weights`` and return them normalised to sum to one, in float64."""
    array = check_weights(weights, batch_size)
    return array / array.sum()


def _default_partition_sites(model: EnergyModel) -> tuple[Site, ...]:
    """Choose the sites whose enumeration gives log Z most cheaply."""
    if not model.latent_sites:
        return model.visible_sites
    if type(model).marginal_energy is EnergyModel.marginal_energy:
        # The generic marginal energy enumerates the missing sites for every
        # example, so a joint enumeration does the same work with memory bounded
        # by the chunk size.
        return model.sites
    groups = [
        group
        for group in (model.visible_sites, model.latent_sites)
        if all(site.is_discrete for site in group)
    ]
    if not groups:
        # num_configurations raises the error that names the real-valued site.
        return model.visible_sites
    return min(groups, key=num_configurations)


# -- chunked reductions -------------------------------------------------------------


def _fold_configurations(
    chunk_fn: Callable[[Array, Any, Configuration, Array], Array],
    init: Array,
    args: Any,
    sites: Sequence[Site],
    chunk_size: int,
) -> Array:
    """Fold ``chunk_fn(carry, args, config, valid)`` over every configuration.

    The codes ``0, ..., count − 1`` are split into chunks of ``chunk_size``. The
    last chunk is padded with code 0, and ``valid`` is False on the padding.
    """
    count = _count_configurations(sites)
    size = min(chunk_size, count)
    num_chunks = -(-count // size)

    @jax.checkpoint
    def fold_chunk(carry, args, start):
        codes = start + jnp.arange(size, dtype=jnp.int32)
        valid = codes < count
        config = decode_configurations(sites, jnp.where(valid, codes, 0))
        return chunk_fn(carry, args, config, valid)

    def body(carry, start):
        return fold_chunk(carry, args, start), None

    starts = jnp.arange(num_chunks, dtype=jnp.int32) * size
    carry, _ = lax.scan(body, init, starts)
    return carry


def _accumulator_dtype(
    log_weight_fn: Callable[[Any, Configuration], Array],
    args: Any,
    sites: Sequence[Site],
    dtype: np.dtype | None,
) -> np.dtype:
    """Return ``dtype``, or the dtype of the log weights when ``dtype`` is None."""
    if dtype is not None:
        return dtype
    probe = decode_configurations(sites, jnp.zeros(1, dtype=jnp.int32))
    return jax.eval_shape(log_weight_fn, args, probe).dtype


def _logsumexp_configurations(
    log_weight_fn: Callable[[Any, Configuration], Array],
    args: Any,
    sites: Sequence[Site],
    chunk_size: int,
    dtype: np.dtype | None,
) -> Array:
    """Return log Σ_x exp(log_weight_fn(args, x)) over every configuration x."""
    _count_configurations(sites)
    dtype = _accumulator_dtype(log_weight_fn, args, sites, dtype)

    def chunk_fn(total, args, config, valid):
        log_weights = log_weight_fn(args, config).astype(dtype)
        log_weights = jnp.where(valid, log_weights, -jnp.inf)
        return jnp.logaddexp(total, jax.nn.logsumexp(log_weights))

    init = jnp.array(-jnp.inf, dtype=dtype)
    return _fold_configurations(chunk_fn, init, args, sites, chunk_size)


def _mean_energy(
    model: EnergyModel, params: Params, data: Configuration, probs: np.ndarray
) -> Array:
    """Return Σ_i w_i E(x_i) for normalised weights ``probs``."""
    energies = model.marginal_energy(params, data)
    return jnp.sum(jnp.asarray(probs, dtype=energies.dtype) * energies)


# -- public estimators --------------------------------------------------------------


def log_partition(
    model: EnergyModel,
    params: Params,
    *,
    sites: Sequence[str] | None = None,
    chunk_size: int = 2**14,
    dtype: Any = None,
) -> Array:
    """Compute log Z_θ exactly by enumerating every configuration of ``sites``.

    Summing the marginal energy of any subset S of the sites over the
    configurations of S gives the same normaliser:

    .. math::

        log Z_θ = log Σ_{x_S} exp(−E_θ(x_S)),
        E_θ(x_S) = −log Σ_{x_{∖S}} exp(−E_θ(x)).

    The result is differentiable with respect to ``params`` and can be traced
    by ``jax.jit`` when ``model``, ``sites`` and ``chunk_size`` are closed over.

    Parameters
    ----------
    model
        Energy model whose enumerated sites are discrete.
    params
        Unconstrained parameters, as from ``model.init_params()``.
    sites
        Names of the sites to enumerate; the others are summed out by
        ``model.marginal_energy``. By default, a model without latent sites
        enumerates its visible sites. A model with a closed-form
        ``marginal_energy`` (such as ``BernoulliRBM``) enumerates whichever of
        its visible or latent sites has fewer configurations. Other models with
        latent sites enumerate every site jointly, which costs the same as the
        generic per-example sum over latent sites but keeps memory bounded by
        ``chunk_size``.
    chunk_size
        Number of configurations evaluated at once.
    dtype
        Floating dtype in which the log weights are summed. Defaults to the
        dtype of the energies (float32, or float64 for float64 parameters when
        ``jax_enable_x64`` is set).

    Returns
    -------
    Array
        Scalar log Z_θ in nats.

    Raises
    ------
    ValueError
        If the enumerated sites have more than ``MAX_EXACT_CONFIGURATIONS``
        configurations or include a real-valued site, or if ``sites``,
        ``chunk_size`` or ``dtype`` is invalid.

    Examples
    --------
    >>> from numpyro_ebm.models import BernoulliRBM
    >>> rbm = BernoulliRBM(3, 2, init_scale=0.0)
    >>> round(float(log_partition(rbm, rbm.init_params())), 4)  # 5 log 2
    3.4657
    """
    chunk_size = _check_chunk_size(chunk_size)
    dtype = _check_dtype(dtype)
    if sites is None:
        enumerated = _default_partition_sites(model)
    else:
        enumerated = _check_sites(model, sites)

    def log_weight_fn(params, config):
        return -model.marginal_energy(params, config)

    return _logsumexp_configurations(
        log_weight_fn, params, enumerated, chunk_size, dtype
    )


def log_likelihood(
    model: EnergyModel,
    params: Params,
    data: Configuration | ArrayLike,
    weights: ArrayLike | None = None,
    *,
    log_z: ArrayLike | None = None,
    sites: Sequence[str] | None = None,
    chunk_size: int = 2**14,
    dtype: Any = None,
) -> Array:
    """Compute the exact average log-likelihood of ``data``, in nats per example.

    .. math::

        ℓ(θ) = −Σ_i w_i E_θ(x_i) / Σ_i w_i − log Z_θ,

    where E_θ is the energy with latent sites summed out.

    Parameters
    ----------
    model
        Energy model with discrete sites.
    params
        Unconstrained parameters.
    data
        Visible configurations with a leading batch axis: a dict keyed by site
        name, or one array when the model has a single visible site. Validated
        by ``model.as_configuration``.
    weights
        Non-negative weight of each example, shape ``(batch,)``; equal weights
        by default.
    log_z
        Precomputed log Z_θ; computed by :func:`log_partition` when omitted.
    sites, chunk_size, dtype
        Passed to :func:`log_partition`.

    Returns
    -------
    Array
        Scalar average log-likelihood.

    Raises
    ------
    ValueError
        If ``data`` or ``weights`` is invalid, or for the reasons listed in
        :func:`log_partition`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from numpyro_ebm.models import BernoulliRBM
    >>> rbm = BernoulliRBM(3, 2, init_scale=0.0)
    >>> data = jnp.array([[1.0, 0.0, 1.0]])
    >>> round(float(log_likelihood(rbm, rbm.init_params(), data)), 4)  # −3 log 2
    -2.0794
    """
    x = model.as_configuration(data, name="data")
    probs = _check_weights(weights, _batch_size(x))
    if log_z is None:
        log_z = log_partition(
            model, params, sites=sites, chunk_size=chunk_size, dtype=dtype
        )
    elif jnp.ndim(log_z) != 0:
        raise ValueError(f"`log_z` must be a scalar; got shape {jnp.shape(log_z)}.")
    return -_mean_energy(model, params, x, probs) - log_z


def exact_gradient(
    model: EnergyModel,
    params: Params,
    data: Configuration | ArrayLike,
    weights: ArrayLike | None = None,
    *,
    sites: Sequence[str] | None = None,
    chunk_size: int = 2**14,
    dtype: Any = None,
) -> dict[str, Array]:
    """Compute the exact gradient of the average negative log-likelihood.

    The gradient with respect to the unconstrained parameters is the difference
    between the data and model expectations of the energy gradient,

    .. math::

        ∇_θ (−ℓ(θ)) = ⟨∇_θ E_θ(x)⟩_data − ⟨∇_θ E_θ(x)⟩_{p_θ},

    obtained by ``jax.grad`` of Σ_i w_i E_θ(x_i) / Σ_i w_i + log Z_θ. This is the
    update that maximum-likelihood learning with fantasy particles estimates.

    Parameters
    ----------
    model
        Energy model with discrete sites.
    params
        Unconstrained parameters.
    data
        Visible configurations with a leading batch axis.
    weights
        Non-negative weight of each example, shape ``(batch,)``.
    sites, chunk_size, dtype
        Passed to :func:`log_partition`.

    Returns
    -------
    dict
        Gradient with the structure of ``params``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from numpyro_ebm.models import BernoulliRBM
    >>> rbm = BernoulliRBM(3, 2, init_scale=0.0)
    >>> data = jnp.array([[1.0, 1.0, 0.0]])
    >>> grad = exact_gradient(rbm, rbm.init_params(), data)
    >>> jnp.round(grad["visible_bias"], 4).tolist()  # −⟨v⟩_data + ⟨v⟩_model
    [-0.5, -0.5, 0.5]
    """
    x = model.as_configuration(data, name="data")
    probs = _check_weights(weights, _batch_size(x))

    def negative_log_likelihood(params):
        log_z = log_partition(
            model, params, sites=sites, chunk_size=chunk_size, dtype=dtype
        )
        return _mean_energy(model, params, x, probs) + log_z

    return jax.grad(negative_log_likelihood)(params)


def entropy(
    model: EnergyModel,
    params: Params,
    *,
    log_z: ArrayLike | None = None,
    chunk_size: int = 2**14,
    dtype: Any = None,
) -> Array:
    """Compute the Shannon entropy of the visible distribution p_θ(x), in nats.

    Every visible configuration is enumerated, with latent sites summed out by
    ``model.marginal_energy``. With log p_θ(x) = −E_θ(x) − log Z_θ,

    .. math::

        S(p_θ) = −Σ_x p_θ(x) log p_θ(x) = log Z_θ + ⟨E_θ(x)⟩_{p_θ},

    and the first form is accumulated over chunks, so no large log Z_θ and
    mean energy cancel.

    Parameters
    ----------
    model
        Energy model whose visible sites are discrete.
    params
        Unconstrained parameters.
    log_z
        Precomputed log Z_θ. By default it is computed from the same visible
        enumeration, so the probabilities sum to one up to rounding.
    chunk_size
        Number of visible configurations evaluated at once. For a model without
        a closed-form ``marginal_energy``, each chunk also enumerates the latent
        sites, so memory grows with ``chunk_size`` times their count.
    dtype
        Floating dtype of the accumulated sums; the energies' dtype by default.

    Returns
    -------
    Array
        Scalar entropy.

    Raises
    ------
    ValueError
        If the visible sites have more than ``MAX_EXACT_CONFIGURATIONS``
        configurations or include a real-valued site.

    Examples
    --------
    >>> from numpyro_ebm.models import BernoulliRBM
    >>> rbm = BernoulliRBM(3, 2, init_scale=0.0)
    >>> round(float(entropy(rbm, rbm.init_params())), 4)  # 3 log 2
    2.0794
    """
    chunk_size = _check_chunk_size(chunk_size)
    dtype = _check_dtype(dtype)
    sites = model.visible_sites
    _count_configurations(sites)

    def log_weight_fn(params, config):
        return -model.marginal_energy(params, config)

    dtype = _accumulator_dtype(log_weight_fn, params, sites, dtype)
    if log_z is None:
        log_z = _logsumexp_configurations(
            log_weight_fn, params, sites, chunk_size, dtype
        )

    def chunk_fn(total, args, config, valid):
        params, log_z = args
        log_probs = log_weight_fn(params, config).astype(dtype) - log_z
        # States with p = 0 contribute 0 · log 0 = 0. The inner where keeps
        # exp(−inf) · (−inf) = nan out of the value and its gradient.
        keep = valid & jnp.isfinite(log_probs)
        safe = jnp.where(keep, log_probs, 0.0)
        return total - jnp.sum(jnp.where(keep, jnp.exp(safe) * safe, 0.0))

    init = jnp.zeros((), dtype=dtype)
    args = (params, jnp.asarray(log_z, dtype=dtype))
    return _fold_configurations(chunk_fn, init, args, sites, chunk_size)


def kl_divergence(
    model: EnergyModel,
    params: Params,
    data: Configuration | ArrayLike,
    weights: ArrayLike | None = None,
    *,
    log_z: ArrayLike | None = None,
    sites: Sequence[str] | None = None,
    chunk_size: int = 2**14,
    dtype: Any = None,
) -> Array:
    """Compute KL(p_data ‖ p_θ) from the empirical distribution of ``data``.

    p_data puts mass Σ_{i: x_i = x} w_i / Σ_i w_i on each distinct row x of
    ``data``, so

    .. math::

        KL(p_data ‖ p_θ) = Σ_x p_data(x) log p_data(x) − Σ_x p_data(x) log p_θ(x)
                         = −S(p_data) − ℓ(θ),

    with ℓ the average log-likelihood of :func:`log_likelihood`. Only log Z_θ
    is enumerated, so this works whenever :func:`log_partition` does, for
    example for a 64-visible, 20-hidden RBM.

    Parameters
    ----------
    model
        Energy model with discrete sites.
    params
        Unconstrained parameters.
    data
        Visible configurations with a leading batch axis.
    weights
        Non-negative weight of each example, shape ``(batch,)``.
    log_z, sites, chunk_size, dtype
        Passed to :func:`log_likelihood`.

    Returns
    -------
    Array
        Scalar divergence in nats. It is non-negative up to rounding of
        order machine epsilon times |log Z_θ|, and is not clipped at zero.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from numpyro_ebm.models import BernoulliRBM
    >>> rbm = BernoulliRBM(3, 2, init_scale=0.0)
    >>> data = jnp.array([[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]])
    >>> round(float(kl_divergence(rbm, rbm.init_params(), data)), 4)  # 3 log 2
    2.0794
    """
    x = model.as_configuration(data, name="data")
    probs = _check_weights(weights, _batch_size(x))
    data_entropy = _empirical_entropy(x, probs)
    if log_z is None:
        log_z = log_partition(
            model, params, sites=sites, chunk_size=chunk_size, dtype=dtype
        )
    average_log_likelihood = -_mean_energy(model, params, x, probs) - log_z
    return -data_entropy - average_log_likelihood


def _batch_size(x: Configuration) -> int:
    return int(next(iter(x.values())).shape[0])


def _empirical_entropy(x: Configuration, probs: np.ndarray) -> float:
    """Return the entropy of the weighted empirical distribution of the rows of x."""
    batch_size = probs.shape[0]
    rows = np.concatenate(
        [
            np.asarray(values, np.float64).reshape(batch_size, -1)
            for values in x.values()
        ],
        axis=1,
    )
    _, inverse = np.unique(rows, axis=0, return_inverse=True)
    mass = np.bincount(inverse.reshape(-1), weights=probs)
    mass = mass[mass > 0]
    return float(-np.sum(mass * np.log(mass)))
