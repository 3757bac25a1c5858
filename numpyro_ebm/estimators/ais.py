r"""Annealed importance sampling (AIS) of log Z, forward and reverse.

AIS moves independent runs through a sequence of distributions
p_k(x) ∝ p*_k(x), k = 0, ..., K, from a tractable base p_0 (known Z_0) to the
target p_K. Each run starts from an exact base sample, and at every step it
adds the log ratio of consecutive unnormalised densities at its current state
to its log weight, then moves with a kernel that leaves p_k invariant:

.. math::

    \log w = \sum_{k=1}^{K} \left[\log p^*_k(x_{k-1}) - \log p^*_{k-1}(x_{k-1})\right],
    \qquad \hat Z_K = Z_0 \, \frac{1}{R} \sum_{r=1}^{R} w_r .

The weights are averaged over the R runs (never over steps), so Ẑ is unbiased
and log Ẑ is a stochastic lower bound of log Z. Reverse AIS starts from
(approximate) target samples, anneals back to the base, and estimates Z_0 / Z_K;
its log Ẑ is a stochastic upper bound, so the two bracket log Z.

References
----------
Neal, R. M. (2001). Annealed importance sampling. Statistics and Computing 11(2).
Salakhutdinov, R. & Murray, I. (2008). On the quantitative analysis of deep
belief networks. ICML.
Burda, Y., Grosse, R. & Salakhutdinov, R. (2015). Accurate and conservative
estimates of MRF log-likelihood using reverse annealing. AISTATS.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_ebm.estimators.paths import AnnealingPath
from numpyro_ebm.types import Array, Configuration, PRNGKey

# Salakhutdinov & Murray (2008) spaced 14,500 inverse temperatures as 500 in
# [0, 0.5), 4,000 in [0.5, 0.9) and 10,000 in [0.9, 1]; the default schedule keeps
# those proportions for any length, so the steps are smallest near the target.
SCHEDULE_BREAKS = (0.0, 0.5, 0.9, 1.0)
SCHEDULE_FRACTIONS = (500 / 14500, 4000 / 14500, 10000 / 14500)


class AISResult(NamedTuple):
    """Result of :func:`ais` or :func:`reverse_ais`.

    Attributes
    ----------
    log_z
        Estimate of log Z of the target, in nats.
    standard_error
        Standard error of ``log_z`` by the delta method,
        sd(w) / (mean(w) √R), computed from normalised weights.
    log_weights
        Log importance weight of every run, shape ``(num_runs,)``.
    effective_sample_size
        (Σ w)² / Σ w² of the weights: near ``num_runs`` when the path is
        fine enough, near 1 when one run dominates.
    samples
        Final configurations of the runs (target samples for forward AIS,
        base samples for reverse AIS), or ``None``.
    """

    log_z: Array
    standard_error: Array
    log_weights: Array
    effective_sample_size: Array
    samples: Configuration | None


def default_schedule(num_betas: int) -> np.ndarray:
    """Return ``num_betas`` inverse temperatures from 0 to 1, densest near 1.

    Examples
    --------
    >>> betas = default_schedule(1000)
    >>> float(betas[0]), float(betas[-1]), len(betas)
    (0.0, 1.0, 1000)
    """
    if not isinstance(num_betas, int | np.integer) or num_betas < 2:
        raise ValueError(
            f"`num_betas` must be an integer of at least 2; got {num_betas!r}."
        )
    counts = np.maximum(1, np.round(np.asarray(SCHEDULE_FRACTIONS) * (num_betas - 1)))
    counts[-1] = max(1, num_betas - 1 - counts[:-1].sum())
    pieces = [
        np.linspace(low, high, int(count), endpoint=False)
        for low, high, count in zip(
            SCHEDULE_BREAKS[:-1], SCHEDULE_BREAKS[1:], counts, strict=True
        )
    ]
    betas = np.concatenate(pieces + [np.ones(1)])
    return (
        betas[:num_betas]
        if betas.size >= num_betas
        else np.linspace(0.0, 1.0, num_betas)
    )


def check_schedule(betas) -> np.ndarray:
    """Validate a user schedule: increasing, from 0 to 1, at least two values."""
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim != 1 or betas.size < 2:
        raise ValueError(
            f"`betas` must be a 1-D array of at least 2 values; got shape {betas.shape}."
        )
    if betas[0] != 0.0 or betas[-1] != 1.0:
        raise ValueError(
            f"`betas` must start at 0 and end at 1; got {betas[0]} and {betas[-1]}."
        )
    if np.any(np.diff(betas) < 0) or not np.all(np.isfinite(betas)):
        raise ValueError("`betas` must be finite and non-decreasing.")
    return betas


def summarise_log_weights(log_weights: Array) -> tuple[Array, Array, Array]:
    """Return log-mean-exp, its delta-method standard error, and the weights' ESS.

    Computed from weights normalised by their maximum, so no weight overflows.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> log_mean, se, ess = summarise_log_weights(jnp.zeros(4))
    >>> float(log_mean), float(se), float(ess)
    (0.0, 0.0, 4.0)
    """
    count = log_weights.shape[0]
    shift = jnp.max(log_weights)
    weights = jnp.exp(log_weights - shift)
    mean = jnp.mean(weights)
    log_mean = shift + jnp.log(mean)
    standard_error = (
        jnp.std(weights, ddof=1) / (mean * jnp.sqrt(count)) if count > 1 else jnp.inf
    )
    ess = jnp.sum(weights) ** 2 / jnp.sum(weights**2)
    return log_mean, standard_error, ess


def _anneal(path: AnnealingPath, keys, states, betas, params):
    """Scan the runs through ``betas``, accumulating forward log weights."""

    def step(carry, inputs):
        states, log_w = carry
        beta_prev, beta, key = inputs
        position = states.position
        log_w = (
            log_w
            + path.log_density(params, beta, position)
            - path.log_density(params, beta_prev, position)
        )
        kernel_params = path.kernel_params(params, beta)
        run_keys = jax.random.split(key, log_w.shape[0])
        states, _ = jax.vmap(path.kernel.step, in_axes=(0, 0, None))(
            run_keys, states, kernel_params
        )
        return (states, log_w), None

    log_w = jnp.zeros(jax.tree.leaves(states.position)[0].shape[0])
    inputs = (betas[:-1], betas[1:], keys)
    (states, log_w), _ = jax.lax.scan(step, (states, log_w), inputs)
    return states, log_w


def ais(
    rng_key: PRNGKey,
    path: AnnealingPath,
    params,
    *,
    num_runs: int = 100,
    num_betas: int = 1000,
    betas=None,
    return_samples: bool = False,
) -> AISResult:
    """Estimate log Z of the target by forward annealed importance sampling.

    Parameters
    ----------
    rng_key
        Random key.
    path
        The annealing path, for example :func:`~numpyro_ebm.estimators.paths.rbm_path`
        or :func:`~numpyro_ebm.estimators.paths.geometric_path`.
    params
        Unconstrained parameters of the target model.
    num_runs
        Independent annealing runs (vmapped).
    num_betas
        Length of the default schedule (ignored when ``betas`` is given).
    betas
        Inverse temperatures from 0 to 1, non-decreasing.
    return_samples
        Also return the runs' final configurations.

    Returns
    -------
    AISResult

    Examples
    --------
    >>> import jax
    >>> from numpyro_ebm.models import BernoulliRBM
    >>> from numpyro_ebm.estimators.paths import rbm_path
    >>> rbm = BernoulliRBM(6, 3)
    >>> zero = jax.tree.map(jax.numpy.zeros_like, rbm.init_params())
    >>> result = ais(jax.random.key(0), rbm_path(rbm), zero, num_runs=10, num_betas=50)
    >>> round(float(result.log_z), 4)  # with zero parameters log Z = 9 log 2
    6.2383
    """
    _check_runs(num_runs)
    betas = jnp.asarray(
        default_schedule(num_betas) if betas is None else check_schedule(betas)
    )
    key_base, key_init, key_run = jax.random.split(rng_key, 3)
    position = jax.vmap(path.sample_base, in_axes=(0, None))(
        jax.random.split(key_base, num_runs), params
    )
    states = _init_states(path, key_init, position, params, betas[0])
    keys = jax.random.split(key_run, betas.shape[0] - 1)
    states, log_w = _jit_anneal(path)(keys, states, betas, params)
    log_mean, standard_error, ess = summarise_log_weights(log_w)
    log_z = path.log_z_base(params) + log_mean
    samples = states.position if return_samples else None
    return AISResult(log_z, standard_error, log_w, ess, samples)


def reverse_ais(
    rng_key: PRNGKey,
    path: AnnealingPath,
    params,
    samples: Configuration,
    *,
    num_betas: int = 1000,
    betas=None,
    return_samples: bool = False,
) -> AISResult:
    """Estimate log Z of the target by annealing target samples back to the base.

    Starting from samples of the target (for example long persistent chains),
    the runs traverse the schedule in reverse, and the mean of their weights
    estimates Z_0 / Z_K. When the starting samples are exact, log Ẑ is a
    stochastic upper bound of log Z, so it brackets log Z together with
    :func:`ais`; approximate samples make it approximate too.

    Parameters
    ----------
    samples
        Target configurations, a dict of visible site name to an array with a
        leading axis; one run starts from each.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ebm.models import BernoulliRBM
    >>> from numpyro_ebm.estimators.paths import rbm_path
    >>> rbm = BernoulliRBM(6, 3)
    >>> zero = jax.tree.map(jnp.zeros_like, rbm.init_params())
    >>> start = {"v": jnp.zeros((10, 6))}
    >>> result = reverse_ais(jax.random.key(0), rbm_path(rbm), zero, start, num_betas=50)
    >>> round(float(result.log_z), 4)
    6.2383
    """
    betas = jnp.asarray(
        default_schedule(num_betas) if betas is None else check_schedule(betas)
    )
    reversed_betas = betas[::-1]
    num_runs = jax.tree.leaves(samples)[0].shape[0]
    _check_runs(num_runs)
    key_init, key_run = jax.random.split(rng_key)
    states = _init_states(path, key_init, samples, params, reversed_betas[0])
    keys = jax.random.split(key_run, betas.shape[0] - 1)
    # Annealing from the target to the base accumulates log Z_0 / Z_K.
    states, log_w = _jit_anneal(path)(keys, states, reversed_betas, params)
    log_mean, standard_error, ess = summarise_log_weights(log_w)
    log_z = path.log_z_base(params) - log_mean
    final = states.position if return_samples else None
    return AISResult(log_z, standard_error, log_w, ess, final)


def _check_runs(num_runs) -> None:
    if not isinstance(num_runs, int | np.integer) or num_runs < 2:
        raise ValueError(
            f"`num_runs` must be an integer of at least 2, so that the standard "
            f"error is defined; got {num_runs!r}."
        )


def _init_states(path, rng_key, position, params, beta):
    count = jax.tree.leaves(position)[0].shape[0]
    keys = jax.random.split(rng_key, count)
    kernel_params = path.kernel_params(params, beta)
    return jax.vmap(path.kernel.init, in_axes=(0, 0, None))(
        keys, position, kernel_params
    )


# The path is a tuple of functions, hashable by identity, so it can be static:
# annealing compiles once per path and schedule length.
_jit_anneal_scan = jax.jit(_anneal, static_argnums=0)


def _jit_anneal(path: AnnealingPath) -> Callable:
    return lambda keys, states, betas, params: _jit_anneal_scan(
        path, keys, states, betas, params
    )


class LogLikelihoodEstimate(NamedTuple):
    """Average log-likelihood of a data set from an estimate of log Z.

    Attributes
    ----------
    value
        Average log-likelihood, in nats per example.
    standard_error
        Its standard error from the log Z estimate (the data term is exact).
    per_dimension
        ``value`` divided by the number of visible elements (nats per
        dimension).
    standard_error_per_dimension
        ``standard_error`` in nats per dimension.
    """

    value: Array
    standard_error: Array
    per_dimension: Array
    standard_error_per_dimension: Array


def ais_log_likelihood(
    model, params, data, log_z: AISResult, weights=None
) -> LogLikelihoodEstimate:
    """Average log-likelihood −⟨E(x)⟩_data − log Ẑ with its error bar.

    Parameters
    ----------
    model
        The energy model.
    params
        Unconstrained parameters at which ``log_z`` was estimated.
    data
        Data set (validated like training data).
    log_z
        Result of :func:`ais` or :func:`reverse_ais`.
    weights
        Optional non-negative per-example weights.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ebm.models import BernoulliRBM
    >>> from numpyro_ebm.estimators.paths import rbm_path
    >>> rbm = BernoulliRBM(6, 3)
    >>> zero = jax.tree.map(jnp.zeros_like, rbm.init_params())
    >>> result = ais(jax.random.key(0), rbm_path(rbm), zero, num_betas=20)
    >>> estimate = ais_log_likelihood(rbm, zero, jnp.ones((5, 6)), result)
    >>> round(float(estimate.value), 3)  # with zero parameters, -6 log 2
    -4.159
    """
    from numpyro_ebm.models.validation import check_weights

    x = model.as_configuration(data, name="data")
    count = jax.tree.leaves(x)[0].shape[0]
    w = jnp.asarray(check_weights(weights, count), dtype=float)
    mean_energy = jnp.sum(w * model.energy(params, x)) / jnp.sum(w)
    value = -mean_energy - log_z.log_z
    dimensions = sum(site.size for site in model.visible_sites)
    return LogLikelihoodEstimate(
        value,
        log_z.standard_error,
        value / dimensions,
        log_z.standard_error / dimensions,
    )


def ais_metric(
    model,
    path: AnnealingPath,
    datasets: dict[str, object],
    rng_key: PRNGKey,
    *,
    num_runs: int = 100,
    num_betas: int = 1000,
) -> Callable:
    """Return a learner metric ``f(params) -> dict`` of AIS log-likelihoods.

    One AIS run per call serves every data set. The result contains
    ``"<name>_log_likelihood"`` and ``"<name>_log_likelihood_se"`` in nats per
    example. Pass it as ``metrics=`` to ``MaximumLikelihood.run``.
    """
    prepared = {
        name: model.as_configuration(x, name=name) for name, x in datasets.items()
    }
    calls = [0]

    def metric(params):
        key = jax.random.fold_in(rng_key, calls[0])
        calls[0] += 1
        result = ais(key, path, params, num_runs=num_runs, num_betas=num_betas)
        values = {}
        for name, x in prepared.items():
            estimate = ais_log_likelihood(model, params, x, result)
            values[f"{name}_log_likelihood"] = float(estimate.value)
            values[f"{name}_log_likelihood_se"] = float(estimate.standard_error)
        return values

    return metric
