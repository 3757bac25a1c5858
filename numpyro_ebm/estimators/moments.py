r"""One- and two-point statistics of configurations, and their comparison.

Each configuration x_s is encoded as a feature vector X_s. Binary, spin and
real-valued elements contribute their value, and a categorical element i with
q states contributes its one-hot code [x_si = a] for a = 0, ..., q − 1. With
per-sample weights w_s normalised to sum to one,

.. math::

    f_a = \sum_s w_s X_{sa}, \qquad
    f_{ab} = \sum_s w_s X_{sa} X_{sb}, \qquad
    C_{ab} = f_{ab} − f_a f_b,

so for categorical elements f_a is the frequency f_i(a), f_ab the pair
frequency f_ij(a, b), and C the connected correlation. C is the weighted
covariance with the biased normalisation, ``np.cov(X.T, aweights=w,
bias=True)``.

For a maximum-likelihood fit of a model whose energy is linear in these
features (Ising and Potts models, fully visible Boltzmann machines), the
gradient of the log-likelihood with respect to the fields and couplings is the
difference of data and model moments. At the optimum the model moments equal the data
moments, which :func:`compare_moments` measures.
"""

from collections.abc import Mapping, Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_ebm.estimators.exact import _check_chunk_size
from numpyro_ebm.models.energy import EnergyModel
from numpyro_ebm.models.sites import Site
from numpyro_ebm.models.validation import check_configuration, check_weights
from numpyro_ebm.types import Array, ArrayLike, Configuration


class Moments(NamedTuple):
    """Weighted one- and two-point statistics of a batch of configurations.

    Features follow the order of the sites, each site's elements in row-major
    order, and for a categorical element its states 0, ..., q − 1. For one
    categorical site with n elements and q states, feature i·q + a is state a
    of element i, so ``mean.reshape(n, q)`` is f_i(a) and
    ``covariance.reshape(n, q, n, q)`` is C_ij(a, b).

    Attributes
    ----------
    mean
        One-point statistics f_a, shape ``(d,)`` for d features.
    second_moment
        Two-point statistics f_ab, shape ``(d, d)``.
    covariance
        Connected correlations C_ab = f_ab − f_a f_b, shape ``(d, d)``.
    element
        NumPy integer array of shape ``(d,)``: the index of the element that
        each feature describes, counting the elements of all sites in order.
    state
        NumPy integer array of shape ``(d,)``: the state a of a one-hot
        feature, or −1 for a feature that is a binary, spin or real value.
    """

    mean: Array
    second_moment: Array
    covariance: Array
    element: np.ndarray
    state: np.ndarray


class MomentComparison(NamedTuple):
    """Agreement between the moments of a model and those of the data.

    Each slope is the ordinary least-squares slope, with intercept, of the
    model statistics regressed on the data statistics. Values near one for
    both the Pearson correlation and the slope mean that the model reproduces
    the data statistics.

    Attributes
    ----------
    mean_pearson, mean_slope
        Pearson correlation and slope over every one-point statistic f_a.
    covariance_pearson, covariance_slope
        Pearson correlation and slope over the connected correlations C_ab of
        features of distinct elements i < j, every state pair (a, b) included
        for categorical elements.
    """

    mean_pearson: Array
    mean_slope: Array
    covariance_pearson: Array
    covariance_slope: Array


def moments(
    model_or_sites: EnergyModel | Site | Sequence[Site],
    data: Configuration | ArrayLike,
    weights: ArrayLike | None = None,
    *,
    chunk_size: int = 1024,
) -> Moments:
    r"""Compute the weighted one- and two-point statistics of ``data``.

    With the feature vectors X_s described in the module documentation and
    weights w normalised to sum to one,

    .. math::

        f = Xᵀ w, \qquad f^{(2)} = Xᵀ \mathrm{diag}(w) X, \qquad
        C = f^{(2)} − f fᵀ.

    The batch is processed ``chunk_size`` rows at a time, so besides a copy of
    the data, memory grows as ``chunk_size`` · d + d² values for d features
    and no ``(batch, d, d)`` array is formed. Sums are accumulated in float64 when
    ``jax_enable_x64`` is set and in float32 otherwise, with the highest
    matmul precision of the backend. Integer and boolean data are cast to that
    dtype, so counts cannot overflow.

    Parameters
    ----------
    model_or_sites
        An energy model, whose visible sites describe ``data``, or the sites
        themselves (one ``Site`` or a sequence of them).
    data
        Configurations with a leading batch axis: a dict keyed by site name, or
        one array when there is a single site. Validated against the sites'
        shapes and domains.
    weights
        Non-negative weight of each configuration, shape ``(batch,)``; equal
        weights by default. They are normalised to sum to one, so integer
        counts give the same result as repeated rows.
    chunk_size
        Number of configurations encoded at once.

    Returns
    -------
    Moments
        The statistics and the layout of their features.

    Raises
    ------
    ValueError
        If ``data``, ``weights`` or ``chunk_size`` is invalid.
    TypeError
        If ``model_or_sites`` is neither an ``EnergyModel`` nor sites.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from numpyro_ebm.models import Site
    >>> spins = Site("x", (2,), (-1.0, 1.0))
    >>> stats = moments(spins, jnp.array([[1.0, 1.0], [-1.0, -1.0]]))
    >>> stats.mean.tolist(), stats.covariance.tolist()
    ([0.0, 0.0], [[1.0, 1.0], [1.0, 1.0]])
    >>> potts = Site("s", (2,), (0, 1, 2))
    >>> stats = moments(potts, jnp.array([[0, 2], [1, 2]]))
    >>> stats.mean.reshape(2, 3).tolist()  # f_i(a)
    [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]
    """
    chunk_size = _check_chunk_size(chunk_size)
    sites, x = _validate_data(model_or_sites, data)
    batch_size = int(next(iter(x.values())).shape[0])
    probs = check_weights(weights, batch_size)
    probs = probs / probs.sum()

    dtype = jnp.result_type(float)
    size = min(chunk_size, batch_size)
    mean, second_moment = _accumulate(
        sites, x, jnp.asarray(probs, dtype=dtype), size, dtype
    )
    covariance = second_moment - jnp.outer(mean, mean)
    element, state = _feature_layout(sites)
    return Moments(mean, second_moment, covariance, element, state)


def compare_moments(data_moments: Moments, model_moments: Moments) -> MomentComparison:
    r"""Compare model moments with data moments by correlation and slope.

    For the statistics y of the model and z of the data over a set of entries,

    .. math::

        r = \frac{\sum_k (z_k − \bar z)(y_k − \bar y)}
                 {\sqrt{\sum_k (z_k − \bar z)^2 \sum_k (y_k − \bar y)^2}},
        \qquad
        \mathrm{slope} = \frac{\sum_k (z_k − \bar z)(y_k − \bar y)}
                              {\sum_k (z_k − \bar z)^2}.

    The one-point entries are every f_a. The two-point entries are the
    connected correlations C_ab of features a, b of distinct elements i < j.
    This excludes the within-element terms, which the one-point statistics
    already fix for binary, spin and categorical elements. At a
    maximum-likelihood optimum of a model with these features as sufficient
    statistics, both r and the slope are one up to sampling noise. A slope below one means the model
    underestimates the correlations.

    Parameters
    ----------
    data_moments
        Moments of the data, from :func:`moments`.
    model_moments
        Moments of model samples with the same feature layout.

    Returns
    -------
    MomentComparison
        Pearson correlations and slopes. A value is NaN where the data
        statistics (or, for r, either statistics) have zero variance, or where
        there are no entries, as for a single element without pairs.

    Raises
    ------
    ValueError
        If the feature layouts differ.
    TypeError
        If an argument is not a ``Moments``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from numpyro_ebm.models import Site
    >>> site = Site("v", (3,), (0.0, 1.0))
    >>> data = jnp.array([[1, 1, 0], [1, 1, 1], [0, 0, 1], [0, 1, 1]])
    >>> data_moments = moments(site, data)
    >>> weaker = data_moments._replace(covariance=0.5 * data_moments.covariance)
    >>> comparison = compare_moments(data_moments, weaker)
    >>> round(float(comparison.covariance_pearson), 4)
    1.0
    >>> round(float(comparison.covariance_slope), 4)
    0.5
    """
    for name, value in (
        ("data_moments", data_moments),
        ("model_moments", model_moments),
    ):
        if not isinstance(value, Moments):
            kind = type(value).__name__
            raise TypeError(f"`{name}` must be a Moments from moments(); got {kind}.")
    same_layout = np.array_equal(
        data_moments.element, model_moments.element
    ) and np.array_equal(data_moments.state, model_moments.state)
    if not same_layout:
        raise ValueError(
            f"`model_moments` has {len(model_moments.element)} features with a "
            f"layout different from the {len(data_moments.element)} features of "
            "`data_moments`. Compute both with the same sites."
        )

    element = data_moments.element
    rows, cols = np.nonzero(element[:, None] < element[None, :])
    mean_pearson, mean_slope = _pearson_and_slope(data_moments.mean, model_moments.mean)
    covariance_pearson, covariance_slope = _pearson_and_slope(
        data_moments.covariance[rows, cols], model_moments.covariance[rows, cols]
    )
    return MomentComparison(
        mean_pearson, mean_slope, covariance_pearson, covariance_slope
    )


# -- helpers ------------------------------------------------------------------------


def _validate_data(
    model_or_sites: EnergyModel | Site | Sequence[Site],
    data: Configuration | ArrayLike,
) -> tuple[tuple[Site, ...], dict[str, Array]]:
    """Return the sites and ``data`` validated against them."""
    if isinstance(model_or_sites, EnergyModel):
        sites = model_or_sites.visible_sites
        return sites, model_or_sites.as_configuration(data, name="data")
    if isinstance(model_or_sites, Site):
        sites = (model_or_sites,)
    elif isinstance(model_or_sites, Sequence) and all(
        isinstance(site, Site) for site in model_or_sites
    ):
        sites = tuple(model_or_sites)
    else:
        raise TypeError(
            "`model_or_sites` must be an EnergyModel, a Site or a sequence of "
            f"Site; got {type(model_or_sites).__name__}."
        )
    names = [site.name for site in sites]
    if not sites or len(set(names)) != len(names):
        raise ValueError(
            f"`model_or_sites` must list at least one site, with distinct names; "
            f"got {names}."
        )
    if not isinstance(data, Mapping):
        if len(sites) != 1:
            raise ValueError(
                f"`data` is an array but there are several sites {names}. Pass a "
                "dict keyed by site name."
            )
        data = {names[0]: data}
    missing = [name for name in names if name not in data]
    extra = sorted(set(data) - set(names))
    if missing or extra:
        raise ValueError(
            f"`data` must have the keys {names}; missing {missing}, unexpected {extra}."
        )
    return sites, {s.name: check_configuration(data[s.name], s) for s in sites}


def _feature_layout(sites: Sequence[Site]) -> tuple[np.ndarray, np.ndarray]:
    """Return the element index and the one-hot state (−1 if none) of each feature."""
    element, state = [], []
    offset = 0
    for site in sites:
        indices = offset + np.arange(site.size)
        if site.is_categorical:
            q = len(site.domain)
            element.append(np.repeat(indices, q))
            state.append(np.tile(np.arange(q), site.size))
        else:
            element.append(indices)
            state.append(np.full(site.size, -1))
        offset += site.size
    return np.concatenate(element), np.concatenate(state)


def _features(sites: Sequence[Site], x: Configuration, dtype: np.dtype) -> Array:
    """Encode a batch as the ``(batch, d)`` feature matrix X."""
    columns = []
    for site in sites:
        values = x[site.name].reshape(x[site.name].shape[0], -1)
        if site.is_categorical:
            one_hot = jax.nn.one_hot(values, len(site.domain), dtype=dtype)
            columns.append(one_hot.reshape(values.shape[0], -1))
        else:
            columns.append(values.astype(dtype))
    return jnp.concatenate(columns, axis=1)


@partial(jax.jit, static_argnames=("sites", "chunk_size", "dtype"))
def _accumulate(
    sites: tuple[Site, ...],
    x: Configuration,
    probs: Array,
    chunk_size: int,
    dtype: np.dtype,
) -> tuple[Array, Array]:
    """Return Xᵀw and XᵀDiag(w)X, summed over chunks of ``chunk_size`` rows."""
    batch_size = probs.shape[0]
    num_chunks = -(-batch_size // chunk_size)
    padding = num_chunks * chunk_size - batch_size

    def split(values):
        # Padded rows have weight 0, and their value 0 is a valid categorical index.
        widths = [(0, padding)] + [(0, 0)] * (values.ndim - 1)
        values = jnp.pad(values, widths)
        return values.reshape((num_chunks, chunk_size) + values.shape[1:])

    def add_chunk(carry, chunk):
        first, second = carry
        x_chunk, w_chunk = chunk
        features = _features(sites, x_chunk, dtype)
        weighted = features * w_chunk[:, None]
        second = second + jnp.matmul(weighted.T, features, precision="highest")
        return (first + weighted.sum(axis=0), second), None

    num_features = int(_feature_layout(sites)[0].shape[0])
    init = (
        jnp.zeros(num_features, dtype),
        jnp.zeros((num_features, num_features), dtype),
    )
    chunks = ({name: split(values) for name, values in x.items()}, split(probs))
    (mean, second_moment), _ = jax.lax.scan(add_chunk, init, chunks)
    # Rounding differs between (a, b) and (b, a), so the average makes f_ab symmetric.
    return mean, 0.5 * (second_moment + second_moment.T)


@jax.jit
def _pearson_and_slope(reference: Array, other: Array) -> tuple[Array, Array]:
    """Return the Pearson correlation and least-squares slope of other on reference."""
    reference_centred = reference - jnp.mean(reference)
    other_centred = other - jnp.mean(other)
    cross = jnp.sum(reference_centred * other_centred)
    reference_square = jnp.sum(reference_centred**2)
    other_square = jnp.sum(other_centred**2)
    denominator = jnp.sqrt(reference_square * other_square)
    pearson = jnp.where(denominator > 0, cross / denominator, jnp.nan)
    slope = jnp.where(reference_square > 0, cross / reference_square, jnp.nan)
    return pearson, slope
