"""Stationarity checks: whether a kernel leaves the model distribution unchanged.

An exact kernel started from exact samples returns exact samples after any
number of steps. For a small discrete model the exact distribution is known by
enumeration, so the check draws exact samples, runs the kernel, and compares the
final configurations with the exact distribution by Pearson's chi-square test
and the total-variation distance. For models too large to enumerate,
:func:`statistics_drift_check` starts from long-run samples and compares chosen
statistics before and after more steps.
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from numpyro_ebm.kernels.base import Kernel
from numpyro_ebm.models.energy import EnergyModel
from numpyro_ebm.models.enumeration import (
    decode_configurations,
    encode_configurations,
    num_configurations,
)
from numpyro_ebm.types import Array, Params, PRNGKey

# Above this many visible configurations the exact distribution is not enumerated.
MAX_STATIONARITY_CONFIGURATIONS = 2**16
# Default significance of the chi-square test: an exact kernel fails 0.1 % of checks.
STATIONARITY_SIGNIFICANCE = 1e-3
# Default bound on the drift of a statistic, in standard errors of its change
# (two-sided normal tail probability 6e-5 per statistic).
DRIFT_THRESHOLD = 4.0
# Expected counts below this are pooled into one bin, the usual validity
# condition of the chi-square approximation.
MIN_EXPECTED_COUNT = 5.0


class StationarityResult(NamedTuple):
    """Result of :func:`stationarity_check`.

    Attributes
    ----------
    total_variation
        ½ Σ |p̂(x) − p(x)| between the final configurations and the exact model.
    noise_floor
        Expected total variation of the same number of exact samples,
        ½ Σ √(2 p(1 − p) / (π N)), the value an exact kernel reaches.
    chi_square_pvalue
        p-value of Pearson's chi-square test (rare states pooled).
    passed
        Whether the p-value is above the significance level.
    """

    total_variation: float
    noise_floor: float
    chi_square_pvalue: float
    passed: bool


def exact_distribution(
    model: EnergyModel, params: Params
) -> tuple[dict[str, Array], np.ndarray]:
    """Enumerate the visible configurations of a small model and their probabilities."""
    count = num_configurations(model.visible_sites)
    if count > MAX_STATIONARITY_CONFIGURATIONS:
        raise ValueError(
            f"the model has {count} visible configurations, above "
            f"MAX_STATIONARITY_CONFIGURATIONS = {MAX_STATIONARITY_CONFIGURATIONS}; use "
            "statistics_drift_check for larger models."
        )
    configurations = decode_configurations(model.visible_sites, jnp.arange(count))
    log_p = -np.asarray(model.energy(params, configurations), dtype=np.float64)
    probs = np.exp(log_p - log_p.max())
    return configurations, probs / probs.sum()


def run_kernel(rng_key: PRNGKey, kernel: Kernel, position, params, num_steps: int):
    """Initialise one chain per configuration in ``position`` and run ``num_steps`` steps."""
    count = jax.tree.leaves(position)[0].shape[0]
    key_init, key_run = jax.random.split(rng_key)

    @jax.jit
    def run(position, params, key_init, key_run):
        states = jax.vmap(kernel.init, (0, 0, None))(
            jax.random.split(key_init, count), position, params
        )

        def step(states, key):
            keys = jax.random.split(key, count)
            return jax.vmap(kernel.step, (0, 0, None))(keys, states, params)[0], None

        return jax.lax.scan(step, states, jax.random.split(key_run, num_steps))[0]

    return run(position, params, key_init, key_run)


def stationarity_check(
    rng_key: PRNGKey,
    model: EnergyModel,
    kernel: Kernel,
    params: Params,
    *,
    num_chains: int = 10000,
    num_steps: int = 5,
    significance: float = STATIONARITY_SIGNIFICANCE,
) -> StationarityResult:
    """Start chains from exact samples, run the kernel, and compare with the model.

    Parameters
    ----------
    rng_key
        Random key.
    model
        A discrete model with at most ``MAX_STATIONARITY_CONFIGURATIONS``
        visible configurations.
    kernel
        The kernel to check; for models with latent sites its ``init`` must
        draw the latent sites from their conditional given the visible ones.
    params
        Unconstrained parameters.
    num_chains
        Number of independent exact starting samples.
    num_steps
        Kernel steps before the comparison.
    significance
        Significance level of the chi-square test.

    Examples
    --------
    >>> import jax
    >>> from numpyro_ebm.kernels import block_gibbs
    >>> from numpyro_ebm.models import BernoulliRBM
    >>> rbm = BernoulliRBM(4, 2, init_scale=1.0)
    >>> result = stationarity_check(jax.random.key(0), rbm, block_gibbs(rbm),
    ...                             rbm.init_params(), num_chains=2000)
    >>> result.passed
    True
    """
    configurations, probs = exact_distribution(model, params)
    key_sample, key_run = jax.random.split(rng_key)
    start_codes = jax.random.choice(
        key_sample, probs.size, (num_chains,), p=jnp.asarray(probs, dtype=float)
    )
    start = jax.tree.map(lambda x: x[start_codes], configurations)
    states = run_kernel(key_run, kernel, start, params, num_steps)
    codes = np.asarray(encode_configurations(model.visible_sites, states.position))
    return compare_with_exact(codes, probs, significance)


def compare_with_exact(
    codes: np.ndarray, probs: np.ndarray, significance: float
) -> StationarityResult:
    """Chi-square test and total variation of sampled codes against exact probabilities."""
    count = codes.size
    observed = np.bincount(codes, minlength=probs.size).astype(float)
    expected = probs * count
    rare = expected < MIN_EXPECTED_COUNT
    pooled_observed = np.append(observed[~rare], observed[rare].sum())
    pooled_expected = np.append(expected[~rare], expected[rare].sum())
    if pooled_expected[-1] == 0.0:
        pooled_observed, pooled_expected = pooled_observed[:-1], pooled_expected[:-1]
    pvalue = float(stats.chisquare(pooled_observed, pooled_expected).pvalue)
    total_variation = 0.5 * float(np.abs(observed / count - probs).sum())
    noise_floor = 0.5 * float(
        np.sum(np.sqrt(2.0 * probs * (1.0 - probs) / (np.pi * count)))
    )
    return StationarityResult(
        total_variation, noise_floor, pvalue, pvalue > significance
    )


class DriftResult(NamedTuple):
    """Result of :func:`statistics_drift_check`.

    Attributes
    ----------
    before, after
        Mean of each statistic over the chains before and after the steps.
    z_scores
        Mean per-chain change divided by its standard error.
    passed
        Whether every |z| is below the threshold.
    """

    before: dict[str, float]
    after: dict[str, float]
    z_scores: dict[str, float]
    passed: bool


def statistics_drift_check(
    rng_key: PRNGKey,
    model: EnergyModel,
    kernel: Kernel,
    states: Any,
    params: Params,
    *,
    num_steps: int = 100,
    statistics: Mapping[str, Callable[[dict[str, Array]], Array]] | None = None,
    threshold: float = DRIFT_THRESHOLD,
) -> DriftResult:
    """Compare statistics of long-run chains before and after ``num_steps`` more steps.

    Chains that already sample the model keep the distribution of every
    statistic, so the mean per-chain change is zero up to Monte Carlo error.
    The energy is always included.

    Parameters
    ----------
    states
        Kernel states with a leading chain axis, for example ``result.chains``.
    statistics
        Per-chain scalars as functions of one chain's visible configuration.
    threshold
        Bound on |z| for every statistic.
    """
    statistics = {"energy": None, **dict(statistics or {})}

    def evaluate(position):
        values = {}
        for name, fn in statistics.items():
            if fn is None:
                values[name] = np.asarray(
                    model.energy(params, position), dtype=np.float64
                )
            else:
                values[name] = np.asarray(jax.vmap(fn)(position), dtype=np.float64)
        return values

    count = jax.tree.leaves(states.position)[0].shape[0]
    before = evaluate(states.position)

    @jax.jit
    def run(states, key):
        def step(states, key):
            keys = jax.random.split(key, count)
            return jax.vmap(kernel.step, (0, 0, None))(keys, states, params)[0], None

        return jax.lax.scan(step, states, jax.random.split(key, num_steps))[0]

    after = evaluate(run(states, rng_key).position)
    z_scores = {}
    for name in statistics:
        change = after[name] - before[name]
        standard_error = change.std(ddof=1) / np.sqrt(count)
        z_scores[name] = (
            float(change.mean() / standard_error) if standard_error > 0 else 0.0
        )
    passed = all(abs(z) < threshold for z in z_scores.values())
    return DriftResult(
        {k: float(v.mean()) for k, v in before.items()},
        {k: float(v.mean()) for k, v in after.items()},
        z_scores,
        passed,
    )
