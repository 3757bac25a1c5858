r"""Analysis of fitted bmDCA Potts models: gauge, contacts, samples and energies.

The couplings of a Potts model are defined up to a gauge: adding g_ij(a) to
J_ij(a, b) for every b and removing it from h_i(a) leaves p(σ) unchanged.
Contact scores are computed in the zero-sum gauge, where every row and column
of each coupling block sums to zero, and corrected by the average product
(Dunn, Wahl and Gloor 2008).

References
----------
Dunn, S. D., Wahl, L. M. and Gloor, G. B. (2008). Mutual information without
the influence of phylogeny or entropy dramatically improves residue contact
prediction. Bioinformatics 24(3). Ekeberg, M. et al. (2013). Improved contact
prediction in proteins: using pseudolikelihoods to infer Potts models.
Physical Review E 87.
"""

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_ebm.dca.training import (
    DEFAULT_MIN_SEPARATION,
    _chain_position,
    _check_positive,
    _check_sequences,
)
from numpyro_ebm.estimators.moments import (
    MomentComparison,
    Moments,
    compare_moments,
    moments,
)
from numpyro_ebm.kernels.base import Kernel
from numpyro_ebm.kernels.local_field import local_field_gibbs
from numpyro_ebm.models.pairwise import Potts
from numpyro_ebm.types import Array, Params, PRNGKey


def zero_sum_gauge(fields: Array, couplings: Array) -> tuple[Array, Array]:
    r"""Move Potts parameters to the zero-sum gauge without changing p(σ).

    With ``·`` the mean over a state index,

    .. math::

        J'_{ij}(a, b) = J_{ij}(a, b) − J_{ij}(·, b) − J_{ij}(a, ·) + J_{ij}(·, ·),
        \qquad
        h'_i(a) = h_i(a) − h_i(·) + Σ_{j≠i} \left(J_{ij}(a, ·) − J_{ij}(·, ·)\right).

    The energy changes by the same constant for every sequence, so the
    distribution is unchanged. ``couplings`` is the symmetric J of shape
    (N, q, N, q) with zero diagonal blocks, as from ``Potts.coupling_matrix``.

    Examples
    --------
    >>> h, J = zero_sum_gauge(jnp.ones((2, 2)), jnp.ones((2, 2, 2, 2)).at[0, :, 0].set(0)
    ...                       .at[1, :, 1].set(0))
    >>> float(jnp.abs(J).max()), float(jnp.abs(h).max())
    (0.0, 0.0)
    """
    row_mean = couplings.mean(axis=3, keepdims=True)  # J_ij(a, ·)
    column_mean = couplings.mean(axis=1, keepdims=True)  # J_ij(·, b)
    total_mean = couplings.mean(axis=(1, 3), keepdims=True)  # J_ij(·, ·)
    gauged = couplings - row_mean - column_mean + total_mean
    shift = (row_mean - total_mean)[..., 0].sum(axis=2)  # Σ_j over (N, q, N)
    gauged_fields = fields - fields.mean(axis=1, keepdims=True) + shift
    return gauged_fields, gauged


def contact_scores(
    couplings: Array, *, exclude_gap: bool = True, apc: bool = True
) -> Array:
    r"""Score residue pairs by the Frobenius norm of zero-sum-gauge couplings, with APC.

    The couplings are moved to the zero-sum gauge over all q states first.
    Then, with ``exclude_gap``, state 0 (the gap) is left out of the norm

    .. math::

        F_{ij} = \sqrt{Σ_{a,b ≥ 1} J'_{ij}(a, b)^2}, \qquad
        F^{APC}_{ij} = F_{ij} − \frac{F_{i·} F_{·j}}{F_{··}},

    where the means F_i· and F_·· run over pairs i ≠ j (the average product
    correction, APC). The diagonal of the result is zero.

    Returns
    -------
    Array
        Symmetric scores of shape (N, N).

    Examples
    --------
    >>> J = jnp.zeros((3, 2, 3, 2)).at[0, 0, 1, 0].set(1.0).at[1, 0, 0, 0].set(1.0)
    >>> scores = contact_scores(J, exclude_gap=False, apc=False)
    >>> round(float(scores[0, 1]), 3), float(scores[0, 2])
    (0.5, 0.0)
    """
    num_sites = couplings.shape[0]
    _, gauged = zero_sum_gauge(jnp.zeros(couplings.shape[:2]), couplings)
    if exclude_gap:
        gauged = gauged[:, 1:, :, 1:]
    norms = jnp.sqrt(jnp.sum(gauged**2, axis=(1, 3)))
    off_diagonal = 1.0 - jnp.eye(num_sites)
    norms = norms * off_diagonal
    if not apc:
        return norms
    site_mean = norms.sum(axis=1) / max(num_sites - 1, 1)
    total_mean = norms.sum() / max(num_sites * (num_sites - 1), 1)
    # All-zero couplings (such as the profile model) have no correction to make.
    correction = jnp.outer(site_mean, site_mean) / jnp.where(
        total_mean > 0, total_mean, 1.0
    )
    return (norms - correction) * off_diagonal


def top_contacts(
    scores: Array, count: int = 20, *, min_separation: int = DEFAULT_MIN_SEPARATION
) -> list[tuple[int, int, float]]:
    """List the ``count`` highest-scoring pairs (i, j, score) with j − i ≥ ``min_separation``.

    Examples
    --------
    >>> scores = jnp.array([[0, 1, 5.0], [1, 0, 2], [5, 2, 0]])
    >>> top_contacts(scores, 1, min_separation=1)
    [(0, 2, 5.0)]
    """
    if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 1:
        raise ValueError(f"`count` must be a positive integer; got {count!r}.")
    scores = np.asarray(scores)
    rows, cols = np.triu_indices(scores.shape[0], k=max(1, min_separation))
    order = np.argsort(-scores[rows, cols])[:count]
    return [
        (int(rows[k]), int(cols[k]), float(scores[rows[k], cols[k]])) for k in order
    ]


def sample_sequences(
    rng_key: PRNGKey,
    model: Potts,
    params: Params,
    num_samples: int,
    *,
    num_sweeps: int = 1000,
    kernel: Kernel | None = None,
) -> Array:
    """Draw sequences from the model by ``num_sweeps`` Gibbs sweeps from random states.

    Each of the ``num_samples`` chains is independent and returns its last
    state. Choose ``num_sweeps`` well above the energy autocorrelation time.

    Examples
    --------
    >>> import jax
    >>> model = Potts(4, 3)
    >>> sample_sequences(jax.random.key(0), model, model.init_params(), 5,
    ...                  num_sweeps=2).shape
    (5, 4)
    """
    _check_positive("num_samples", num_samples)
    _check_positive("num_sweeps", num_sweeps)
    kernel = local_field_gibbs(model) if kernel is None else kernel
    key_init, key_state, key_run = jax.random.split(rng_key, 3)
    start = jax.random.randint(
        key_init, (num_samples, model.num_sites), 0, model.num_states, jnp.int32
    )
    init_keys = jax.random.split(key_state, num_samples)
    chains = jax.vmap(kernel.init, in_axes=(0, 0, None))(
        init_keys, {"x": start}, params
    )

    @jax.jit
    def run(chains, key):
        def sweep(chains, key):
            keys = jax.random.split(key, num_samples)
            chains, _ = jax.vmap(kernel.step, in_axes=(0, 0, None))(
                keys, chains, params
            )
            return chains, None

        chains, _ = jax.lax.scan(sweep, chains, jax.random.split(key, num_sweeps))
        return chains

    return _chain_position(run(chains, key_run))["x"]


def sequence_energies(model: Potts, params: Params, sequences: np.ndarray) -> Array:
    """Return the energies E(σ) of integer sequences of shape (M, L).

    Examples
    --------
    >>> model = Potts(2, 2, fields=jnp.array([[1.0, 0.0], [0.0, 0.5]]))
    >>> sequence_energies(model, model.init_params(), np.array([[0, 1], [1, 1]])).tolist()
    [-1.5, -0.5]
    """
    states = _check_sequences(sequences, model.num_states)
    _check_length(states, model)
    return model.energy(params, {"x": jnp.asarray(states, jnp.int32)})


def single_mutant_energies(
    model: Potts, params: Params, reference: np.ndarray
) -> Array:
    """Return ΔE[i, a] = E(reference with state a at i) − E(reference), shape (L, q).

    The entry of the reference state itself is zero.

    Examples
    --------
    >>> model = Potts(2, 2, fields=jnp.array([[1.0, 0.0], [0.0, 0.0]]))
    >>> single_mutant_energies(model, model.init_params(), np.array([0, 0])).tolist()
    [[0.0, 1.0], [0.0, 0.0]]
    """
    reference = np.asarray(reference)
    if reference.ndim != 1:
        raise ValueError(
            f"`reference` must be one sequence of shape (L,); got shape "
            f"{reference.shape}."
        )
    states = _check_sequences(reference[None], model.num_states)
    _check_length(states, model)
    x = jnp.asarray(states, jnp.int32)
    local = model.local_fields(params, x)[0]
    current = jnp.take_along_axis(local, x[0][:, None], axis=1)
    return current - local


def fresh_comparison(
    rng_key: PRNGKey,
    model: Potts,
    params: Params,
    data_moments: Moments,
    num_samples: int = 10_000,
    *,
    num_sweeps: int = 200,
    kernel: Kernel | None = None,
) -> MomentComparison:
    """Compare the data with fresh samples of the model, independent of training.

    The persistent chains of training follow θ and lag behind it. This
    function draws ``num_samples`` new chains by :func:`sample_sequences`
    from uniformly random sequences and compares their moments with
    ``data_moments``, for example from
    :func:`~numpyro_ebm.dca.frequency_moments`.

    Examples
    --------
    >>> import jax
    >>> from numpyro_ebm.dca import frequencies, frequency_moments, profile_params
    >>> data = np.array([[0, 0, 1], [1, 1, 1], [0, 1, 1], [0, 0, 1]])
    >>> single, pair = frequencies(data, 2, pseudocount=0.1)
    >>> model = Potts(3, 2)
    >>> comparison = fresh_comparison(jax.random.key(0), model, profile_params(single),
    ...                               frequency_moments(single, pair), 2000,
    ...                               num_sweeps=5)
    >>> bool(comparison.mean_pearson > 0.99)
    True
    """
    samples = sample_sequences(
        rng_key, model, params, num_samples, num_sweeps=num_sweeps, kernel=kernel
    )
    return compare_moments(data_moments, moments(model, samples))


def _check_length(states: np.ndarray, model: Potts) -> None:
    if states.shape[1] != model.num_sites:
        raise ValueError(
            f"the sequences have {states.shape[1]} positions but the model has "
            f"{model.num_sites} sites; use sequences of the alignment it was fitted to."
        )
