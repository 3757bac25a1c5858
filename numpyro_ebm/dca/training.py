r"""Training of bmDCA Potts models on reweighted alignment frequencies.

A fully connected :class:`~numpyro_ebm.models.Potts` model is fitted by
persistent contrastive divergence to the reweighted frequencies of an
alignment, with a pseudocount λ:

.. math::

    f_i(a) ← (1 − λ) f_i(a) + \frac{λ}{q}, \qquad
    f_{ij}(a, b) ← (1 − λ) f_{ij}(a, b) + \frac{λ}{q^2}.

The Potts energy is linear in the one-hot statistics, so the data term of
every update is :meth:`~numpyro_ebm.models.Potts.mean_energy` at these
frequencies, computed once, and an update costs the same for 10³ or 10⁵
sequences. Training starts from the independent-site (profile) model,
h_i(a) = log f_i(a) and J = 0, with the chains drawn from it, as adabmDCA
does, so the one-site frequencies are matched from the first update.

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

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from numpyro_ebm.estimators.moments import Moments, compare_moments, moments
from numpyro_ebm.kernels.base import Kernel
from numpyro_ebm.kernels.local_field import local_field_gibbs
from numpyro_ebm.learning.learner import MaximumLikelihood
from numpyro_ebm.learning.penalty import Penalty
from numpyro_ebm.learning.state import LearnerState
from numpyro_ebm.models.pairwise import Potts
from numpyro_ebm.models.validation import check_weights
from numpyro_ebm.types import Array, Params, PRNGKey

# adabmDCA 2.0 defaults (Rosset et al. 2025): learning rate, sweeps per update
# and the stopping Pearson correlation of the connected correlations.
DEFAULT_LEARNING_RATE = 0.01
DEFAULT_NUM_SWEEPS = 10
DEFAULT_TARGET_PEARSON = 0.95
# adabmDCA uses 10,000 chains. The cost of an update grows linearly with the chains.
DEFAULT_NUM_CHAINS = 1000
# Smallest frequency that the profile initialisation takes the log of.
PROFILE_MIN_FREQUENCY = 1e-6
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
    effective = float(np.sum(weights))
    if effective <= 1.0:
        raise ValueError(
            f"the default pseudocount 1/M_eff needs M_eff = Σ weights > 1; the "
            f"weights sum to {effective:g}. Pass `pseudocount` in [0, 1), or weights "
            "that count sequences, such as those of sequence_weights."
        )
    return 1.0 / effective


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
    weights = check_weights(weights, states.shape[0])
    if not 0.0 <= pseudocount < 1.0:
        raise ValueError(f"`pseudocount` must be in [0, 1); got {pseudocount}.")
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


def frequency_moments(single: Array, pair: Array) -> Moments:
    """Return the :class:`~numpyro_ebm.estimators.Moments` of given frequencies.

    The layout is that of :func:`~numpyro_ebm.estimators.moments` for a Potts
    model (feature i·q + a is state a of site i), so the result compares with
    the moments of model samples by
    :func:`~numpyro_ebm.estimators.compare_moments`.

    Examples
    --------
    >>> single, pair = frequencies(np.array([[0, 1], [1, 1]]), 2)
    >>> stats = frequency_moments(single, pair)
    >>> stats.element.tolist(), stats.state.tolist(), float(stats.covariance[0, 2])
    ([0, 0, 1, 1], [0, 1, 0, 1], 0.0)
    """
    num_sites, num_states = single.shape
    size = num_sites * num_states
    mean = jnp.asarray(single).reshape(size)
    second = jnp.asarray(pair).reshape(size, size)
    return Moments(
        mean=mean,
        second_moment=second,
        covariance=second - jnp.outer(mean, mean),
        element=np.repeat(np.arange(num_sites), num_states),
        state=np.tile(np.arange(num_states), num_sites),
    )


def profile_params(single: Array) -> Params:
    """Return the independent-site model h_i(a) = log f_i(a), J = 0, as Potts parameters.

    Frequencies below ``PROFILE_MIN_FREQUENCY`` are raised to it, so a state
    never seen without a pseudocount gets a large negative field instead of
    −∞.

    Examples
    --------
    >>> params = profile_params(jnp.array([[0.5, 0.5], [1.0, 0.0]]))
    >>> np.asarray(params["fields"], float).round(2).tolist(), params["couplings"].shape
    ([[-0.69, -0.69], [0.0, -13.82]], (2, 2, 2, 2))
    """
    single = jnp.asarray(single, dtype=float)
    num_sites, num_states = single.shape
    return {
        "fields": jnp.log(jnp.maximum(single, PROFILE_MIN_FREQUENCY)),
        "couplings": jnp.zeros((num_sites, num_states, num_sites, num_states)),
    }


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

    Every update uses the whole alignment through its frequencies (see
    :meth:`~numpyro_ebm.learning.MaximumLikelihood.run_full_batch`). A new
    run starts from the profile model with chains drawn from it.

    Parameters
    ----------
    rng_key
        Key for the initial chains and the updates.
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
        Updates between two comparisons of chain and data moments. Ignored
        when ``monitor`` is given, which keeps its own.
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
        example to save checkpoints. An epoch is gcd(``check_every``, updates
        done, ``max_updates``) updates, which is ``check_every`` for a new run
        whose ``max_updates`` is a multiple of it.

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
    _check_positive("check_every", check_every)
    weights = check_weights(weights, states.shape[0])
    if pseudocount is None:
        pseudocount = default_pseudocount(weights)
    model = Potts(states.shape[1], num_states) if learner is None else learner.model
    if (model.num_sites, model.num_states) != (states.shape[1], num_states):
        raise ValueError(
            f"`learner` fits Potts({model.num_sites}, {model.num_states}) but the "
            f"alignment needs Potts({states.shape[1]}, {num_states})."
        )
    learner = dca_learner(model) if learner is None else learner
    single, pair = frequencies(states, num_states, weights, pseudocount)
    if monitor is None:
        monitor = PearsonMonitor(
            model,
            frequency_moments(single, pair),
            target=target_pearson,
            check_every=check_every,
        )
    if on_check is not None:
        monitor.on_check = on_check
    done = 0 if init_state is None else int(init_state.step)
    converged = bool(monitor.pearson) and monitor.pearson[-1] >= monitor.target
    if init_state is None and monitor.pearson:
        raise ValueError(
            "`monitor` already contains checks of an earlier run; pass that run's "
            "`init_state` with it, or leave `monitor` out to start a new run."
        )
    if init_state is not None and done >= max_updates and not converged:
        raise ValueError(
            f"`init_state` already has {done} updates, not fewer than `max_updates` "
            f"= {max_updates}; raise `max_updates` to continue training."
        )
    state = init_state
    if done < max_updates and not converged:
        key_chains, key_run = jax.random.split(rng_key)
        start = {}
        if init_state is None:
            start = {
                "init_params": profile_params(single),
                "init_position": jax.random.categorical(
                    key_chains,
                    jnp.log(single),
                    shape=(learner.num_chains, model.num_sites),
                ).astype(jnp.int32),
            }
        # Epoch boundaries fall on every multiple of check_every between the
        # first and the last update, where the monitor checks.
        epoch = math.gcd(monitor.check_every, done, max_updates)
        result = learner.run_full_batch(
            key_run,
            lambda params: model.mean_energy(params, single, pair),
            num_updates=max_updates - done,
            updates_per_epoch=epoch,
            init_state=init_state,
            progress_bar=progress_bar,
            callbacks=[monitor, *callbacks],
            **start,
        )
        state = result.state
        if not monitor.updates or monitor.updates[-1] != int(state.step):
            monitor.check(state)
        converged = monitor.pearson[-1] >= monitor.target
    return DCAResult(model, state, monitor, converged)


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
