r"""Boltzmann-machine direct coupling analysis (bmDCA) of sequence alignments.

A fully connected :class:`~numpyro_ebm.models.Potts` model is fitted by
persistent contrastive divergence to the reweighted frequencies of an
alignment, with a pseudocount λ:

.. math::

    f_i(a) ← (1 − λ) f_i(a) + \frac{λ}{q}, \qquad
    f_{ij}(a, b) ← (1 − λ) f_{ij}(a, b) + \frac{λ}{q^2}.

These are the moments of a mixture of the weighted data (weight 1 − λ) and
the uniform distribution over sequences (weight λ). The learner only receives
weighted sequences, so the uniform component is represented by K = q·R
balanced random rows: in every column each state occurs exactly R times, in
an independent random order per column. Their single-site frequencies are
exactly 1/q, and their pair frequencies are 1/q² up to a sampling error of
order 1/(q√K). That error enters the fitted moments multiplied by λ (about
10⁻⁴ for M_eff ≈ 10³). The data moments used to measure convergence are
computed from the same weighted rows, so the stopping rule tests exactly
what the learner fits.

Training stops when the Pearson correlation between the connected
correlations C_ij(a, b) = f_ij(a, b) − f_i(a) f_j(b) of the data and of the
persistent chains reaches a target (0.95 by default).

References
----------
Figliuzzi, M., Barrat-Charlaix, P. and Weigt, M. (2018). How pairwise
coevolutionary models capture the collective residue variability in proteins.
Molecular Biology and Evolution 35(4). Rosset, L. et al. (2025). adabmDCA 2.0 —
a flexible but easy-to-use package for Direct Coupling Analysis. BMC
Bioinformatics 26.
"""

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from numpyro_ebm.estimators.moments import compare_moments, moments
from numpyro_ebm.kernels.base import Kernel
from numpyro_ebm.kernels.local_field import local_field_gibbs
from numpyro_ebm.learning.learner import MaximumLikelihood
from numpyro_ebm.learning.penalty import Penalty
from numpyro_ebm.learning.state import LearnerState
from numpyro_ebm.models.pairwise import Potts
from numpyro_ebm.types import Array, Params, PRNGKey

# adabmDCA 2.0 defaults (Rosset et al. 2025): learning rate, sweeps per update
# and the stopping Pearson correlation of the connected correlations.
DEFAULT_LEARNING_RATE = 0.01
DEFAULT_NUM_SWEEPS = 10
DEFAULT_TARGET_PEARSON = 0.95
# adabmDCA uses 10,000 chains. The cost of an update grows linearly with the chains.
DEFAULT_NUM_CHAINS = 1000
# Rows per state of the uniform pseudocount component (K = q · R rows).
PSEUDOCOUNT_ROWS_PER_STATE = 50
# Minimum |i − j| of the pairs listed by top_contacts, the usual cut that
# leaves out pairs close along the chain.
DEFAULT_MIN_SEPARATION = 4


class PearsonMonitor:
    """Training callback recording data–model agreement and stopping at a target.

    Every ``check_every`` updates it computes the :func:`moments` of the
    persistent chains and compares them with ``data_moments`` by
    :func:`compare_moments`. It returns ``True`` (stop) once the Pearson
    correlation of the connected correlations reaches ``target``.

    Attributes
    ----------
    updates, pearson, slope
        Lists of the update number, the Pearson correlation and the slope at
        each check.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from numpyro_ebm.models import Potts
    >>> model = Potts(3, 2)
    >>> data = jnp.array([[0, 0, 1], [1, 1, 0], [0, 1, 1]])
    >>> monitor = PearsonMonitor(model, moments(model, data), target=0.9)
    >>> monitor.updates
    []
    """

    def __init__(
        self,
        model: Potts,
        data_moments,
        *,
        target: float = DEFAULT_TARGET_PEARSON,
        check_every: int = 10,
        on_check: Callable[[int, float, float], None] | None = None,
    ):
        if not 0.0 < target <= 1.0:
            raise ValueError(f"`target` must be in (0, 1]; got {target}.")
        _check_positive("check_every", check_every)
        self.model = model
        self.data_moments = data_moments
        self.target = float(target)
        self.check_every = int(check_every)
        self.on_check = on_check
        self.updates: list[int] = []
        self.pearson: list[float] = []
        self.slope: list[float] = []

    def check(self, state: LearnerState) -> float:
        """Compare the chains of ``state`` with the data; record and return r."""
        position = _chain_position(state.chains)
        comparison = compare_moments(self.data_moments, moments(self.model, position))
        step = int(state.step)
        pearson = float(comparison.covariance_pearson)
        slope = float(comparison.covariance_slope)
        self.updates.append(step)
        self.pearson.append(pearson)
        self.slope.append(slope)
        if self.on_check is not None:
            self.on_check(step, pearson, slope)
        return pearson

    def __call__(self, epoch: int, state: LearnerState) -> bool:
        """Check every ``check_every`` updates; return whether the target is reached."""
        if int(state.step) % self.check_every:
            return False
        return self.check(state) >= self.target


class DCAResult(NamedTuple):
    """Outcome of :func:`fit_dca`.

    Attributes
    ----------
    model
        The Potts model.
    state
        The learner state (parameters, chains, optimiser state, key, step).
    monitor
        The :class:`PearsonMonitor` with the Pearson correlation and slope
        along training.
    converged
        Whether the target Pearson correlation was reached.
    """

    model: Potts
    state: LearnerState
    monitor: PearsonMonitor
    converged: bool


def default_pseudocount(weights: np.ndarray) -> float:
    """Return λ = 1/M_eff, the pseudocount of adabmDCA 2.0.

    Examples
    --------
    >>> default_pseudocount(np.full(4, 0.5))
    0.5
    """
    return float(1.0 / np.sum(weights))


def pseudocount_rows(rng_key: PRNGKey, num_sites: int, num_states: int) -> Array:
    """Draw K = q · R balanced random sequences standing for the uniform distribution.

    Each column contains every state exactly R = ``PSEUDOCOUNT_ROWS_PER_STATE``
    times, shuffled independently per column.

    Examples
    --------
    >>> import jax
    >>> rows = pseudocount_rows(jax.random.key(0), 3, 2)
    >>> rows.shape, [int((rows[:, i] == 1).sum()) for i in range(3)]
    ((100, 3), [50, 50, 50])
    """
    column = jnp.repeat(
        jnp.arange(num_states, dtype=jnp.int32), PSEUDOCOUNT_ROWS_PER_STATE
    )
    keys = jax.random.split(rng_key, num_sites)
    return jax.vmap(lambda key: jax.random.permutation(key, column), out_axes=1)(keys)


def training_rows(
    rng_key: PRNGKey,
    sequences: np.ndarray,
    num_states: int,
    weights: np.ndarray | None = None,
    pseudocount: float | None = None,
) -> tuple[Array, Array]:
    """Return the sequences and weights whose moments are the corrected frequencies.

    The data rows keep their weights scaled to total 1 − λ and the
    :func:`pseudocount_rows` share the weight λ, so weighted means are those
    of the pseudocount-corrected frequencies.

    Examples
    --------
    >>> import jax
    >>> rows, w = training_rows(jax.random.key(0), np.array([[0, 1]]), 2,
    ...                         pseudocount=0.1)
    >>> rows.shape, round(float(w[0]), 6), round(float(w[1:].sum()), 6)
    ((101, 2), 0.9, 0.1)
    """
    states = _check_sequences(sequences, num_states)
    weights = (
        np.ones(states.shape[0]) if weights is None else np.asarray(weights, float)
    )
    if (
        weights.shape != (states.shape[0],)
        or not np.all(weights >= 0)
        or weights.sum() <= 0
    ):
        raise ValueError(
            f"`weights` must be {states.shape[0]} non-negative values with a positive "
            f"sum, one per sequence; got shape {weights.shape}."
        )
    if pseudocount is None:
        pseudocount = default_pseudocount(weights)
    if not 0.0 <= pseudocount < 1.0:
        raise ValueError(f"`pseudocount` must be in [0, 1); got {pseudocount}.")
    uniform = pseudocount_rows(rng_key, states.shape[1], num_states)
    data_weights = (1.0 - pseudocount) * weights / weights.sum()
    uniform_weights = np.full(uniform.shape[0], pseudocount / uniform.shape[0])
    rows = jnp.concatenate([jnp.asarray(states, jnp.int32), uniform])
    return rows, jnp.asarray(np.concatenate([data_weights, uniform_weights]))


def frequencies(
    sequences: np.ndarray,
    num_states: int,
    weights: np.ndarray | None = None,
    pseudocount: float = 0.0,
) -> tuple[Array, Array]:
    r"""Compute the single-site and pair frequencies with an exact pseudocount.

    .. math::

        f_i(a) = (1 − λ) Σ_m \tilde w_m [σ_{mi} = a] + λ/q, \qquad
        f_{ij}(a, b) = (1 − λ) Σ_m \tilde w_m [σ_{mi} = a][σ_{mj} = b] + λ/q^2,

    with the weights w̃ normalised to sum to one, for i ≠ j. The diagonal
    blocks are f_ii(a, b) = δ_ab f_i(a).

    Returns
    -------
    tuple
        f_i(a) of shape (N, q) and f_ij(a, b) of shape (N, q, N, q).

    Examples
    --------
    >>> f1, f2 = frequencies(np.array([[0, 1], [0, 0]]), 2)
    >>> f1.tolist(), float(f2[0, 0, 1, 1])
    ([[1.0, 0.0], [0.5, 0.5]], 0.5)
    """
    states = _check_sequences(sequences, num_states)
    weights = (
        np.ones(states.shape[0]) if weights is None else np.asarray(weights, float)
    )
    stats = moments(
        _categorical_site(states.shape[1], num_states),
        jnp.asarray(states, jnp.int32),
        weights,
    )
    n, q = states.shape[1], num_states
    single = (1.0 - pseudocount) * stats.mean.reshape(n, q) + pseudocount / q
    pair = (1.0 - pseudocount) * stats.second_moment.reshape(n, q, n, q)
    pair = pair + pseudocount / q**2
    # A site cannot hold two states at once: f_ii(a, b) = δ_ab f_i(a).
    sites = jnp.arange(n)
    pair = pair.at[sites, :, sites, :].set(jax.vmap(jnp.diag)(single))
    return single, pair


def dca_optimizer(
    learning_rate: float = DEFAULT_LEARNING_RATE,
) -> optax.GradientTransformation:
    r"""Return SGD with step η on the fields and 2η on the raw couplings.

    :class:`~numpyro_ebm.models.Potts` uses J = (W + Wᵀ)/2, so the energy
    gradient with respect to the raw W is half that with respect to J. The
    doubled step makes each update the bmDCA rule

    .. math::

        h_i(a) \mathrel{+}= η (f_i^{data}(a) − f_i^{model}(a)), \qquad
        J_{ij}(a, b) \mathrel{+}= η (f_{ij}^{data}(a, b) − f_{ij}^{model}(a, b)).

    Examples
    --------
    >>> optimizer = dca_optimizer(0.01)
    >>> state = optimizer.init({"fields": jnp.zeros(2), "couplings": jnp.zeros(2)})
    """
    labels = {"fields": "fields", "couplings": "couplings"}
    return optax.multi_transform(
        {
            "fields": optax.sgd(learning_rate),
            "couplings": optax.sgd(2.0 * learning_rate),
        },
        labels,
    )


def dca_learner(
    model: Potts,
    *,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    num_chains: int = DEFAULT_NUM_CHAINS,
    num_sweeps: int = DEFAULT_NUM_SWEEPS,
    l2: float = 0.0,
    kernel: Kernel | None = None,
) -> MaximumLikelihood:
    """Build the PCD learner of bmDCA: local-field Gibbs chains and :func:`dca_optimizer`.

    ``kernel`` replaces the default ``local_field_gibbs(model)``, for example
    with a :func:`~numpyro_ebm.kernels.parallel_tempering` kernel. ``l2`` is
    the L2 coefficient on both fields and couplings.

    Examples
    --------
    >>> learner = dca_learner(Potts(3, 2), num_chains=4)
    >>> learner.num_sweeps
    10
    """
    penalty = Penalty(l2={"fields": l2, "couplings": l2}) if l2 else None
    return MaximumLikelihood(
        model,
        dca_optimizer(learning_rate),
        kernel=local_field_gibbs(model) if kernel is None else kernel,
        num_chains=num_chains,
        num_sweeps=num_sweeps,
        penalty=penalty,
    )


def fit_dca(
    rng_key: PRNGKey,
    sequences: np.ndarray,
    num_states: int,
    *,
    weights: np.ndarray | None = None,
    pseudocount: float | None = None,
    learner: MaximumLikelihood | None = None,
    max_updates: int = 2000,
    target_pearson: float = DEFAULT_TARGET_PEARSON,
    check_every: int = 10,
    init_state: LearnerState | None = None,
    monitor: PearsonMonitor | None = None,
    progress_bar: bool = False,
    on_check: Callable[[int, float, float], None] | None = None,
    callbacks: Sequence[Callable[[int, LearnerState], object]] = (),
) -> DCAResult:
    """Fit a Potts model to an alignment until the Pearson target or ``max_updates``.

    Each update uses the whole alignment (one epoch of one full batch).

    Parameters
    ----------
    rng_key
        Key for the pseudocount rows, the chains and the updates.
    sequences
        Integer states of shape (M, L).
    num_states
        q, the alphabet size.
    weights
        Sequence weights, for example from
        :func:`~numpyro_ebm.data.fasta.sequence_weights`; equal by default.
    pseudocount
        λ; 1/M_eff by default (M_eff = Σ weights).
    learner
        A learner from :func:`dca_learner` for ``Potts(L, q)``; built with the
        defaults when omitted.
    max_updates
        Total number of updates, counting those in ``init_state``.
    target_pearson
        Pearson correlation of the connected correlations that stops training.
    check_every
        Updates between two comparisons of chain and data moments.
    init_state
        Learner state to continue from (``DCAResult.state``).
    monitor
        A monitor to continue recording into; a new one by default.
    progress_bar
        Whether to show the learner's progress bar.
    on_check
        Called as ``on_check(update, pearson, slope)`` at each check.
    callbacks
        More learner callbacks ``f(epoch, state)``, run after the monitor, for
        example to save checkpoints.

    Returns
    -------
    DCAResult

    Examples
    --------
    >>> import jax
    >>> data = np.array([[0, 0, 1], [1, 1, 0], [0, 0, 0], [1, 1, 1]] * 5)
    >>> learner = dca_learner(Potts(3, 2), num_chains=50, learning_rate=0.1)
    >>> result = fit_dca(jax.random.key(0), data, 2, learner=learner,
    ...                  max_updates=20, check_every=10)
    >>> result.monitor.updates
    [10, 20]
    """
    states = _check_sequences(sequences, num_states)
    _check_positive("max_updates", max_updates)
    key_rows, key_run = jax.random.split(rng_key)
    rows, row_weights = training_rows(
        key_rows, states, num_states, weights, pseudocount
    )
    model = Potts(states.shape[1], num_states) if learner is None else learner.model
    if (model.num_sites, model.num_states) != (states.shape[1], num_states):
        raise ValueError(
            f"`learner` fits Potts({model.num_sites}, {model.num_states}) but the "
            f"alignment needs Potts({states.shape[1]}, {num_states})."
        )
    learner = dca_learner(model) if learner is None else learner
    if monitor is None:
        data_moments = moments(model, rows, row_weights)
        monitor = PearsonMonitor(
            model, data_moments, target=target_pearson, check_every=check_every
        )
    monitor.on_check = on_check
    done = 0 if init_state is None else int(init_state.step)
    converged = bool(monitor.pearson) and monitor.pearson[-1] >= monitor.target
    state = init_state
    if done < max_updates and not converged:
        result = learner.run(
            key_run,
            rows,
            num_epochs=max_updates - done,
            batch_size=rows.shape[0],
            weights=row_weights,
            init_state=init_state,
            progress_bar=progress_bar,
            callbacks=[monitor, *callbacks],
        )
        state = result.state
        if not monitor.updates or monitor.updates[-1] != int(state.step):
            monitor.check(state)
        converged = monitor.pearson[-1] >= monitor.target
    return DCAResult(model, state, monitor, converged)


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

    The couplings are moved to the zero-sum gauge over all q states first;
    then, with ``exclude_gap``, state 0 (the gap) is left out of the norm

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
    site_mean = norms.sum(axis=1) / (num_sites - 1)
    total_mean = norms.sum() / (num_sites * (num_sites - 1))
    return (norms - jnp.outer(site_mean, site_mean) / total_mean) * off_diagonal


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
    states = _check_sequences(np.asarray(reference)[None], model.num_states)
    x = jnp.asarray(states, jnp.int32)
    local = model.local_fields(params, x)[0]
    current = jnp.take_along_axis(local, x[0][:, None], axis=1)
    return current - local


def _chain_position(chains) -> dict:
    """Return the visible position of a batch of kernel states (tempering included)."""
    return chains.position


def _categorical_site(num_sites: int, num_states: int):
    from numpyro_ebm.models.sites import Site

    return Site("x", (num_sites,), tuple(range(num_states)))


def _check_sequences(sequences, num_states: int) -> np.ndarray:
    states = np.asarray(sequences)
    if (
        states.ndim != 2
        or 0 in states.shape
        or not np.issubdtype(states.dtype, np.integer)
    ):
        raise ValueError(
            f"`sequences` must be a non-empty (M, L) integer array; got shape "
            f"{states.shape} and dtype {states.dtype}."
        )
    if states.min() < 0 or states.max() >= num_states:
        raise ValueError(
            f"`sequences` contains states {states.min()}..{states.max()}, outside "
            f"0..{num_states - 1} for `num_states` = {num_states}."
        )
    return states


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")
