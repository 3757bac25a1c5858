"""Traces of the fantasy chains at fixed θ, as ArviZ DataTrees, and their summary.

Whether the fantasy particles sample the model is checked the way any MCMC
output is: run the chains at fixed parameters, record the energy (and any
chosen statistic) at every sweep, and compute the rank-normalised split R-hat
and the bulk and tail effective sample sizes with arviz-stats.
"""

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import arviz_base
import arviz_stats
import jax
import numpy as np
import pandas as pd
import xarray

from numpyro_ebm.kernels.base import Kernel
from numpyro_ebm.models.energy import EnergyModel
from numpyro_ebm.types import Array, Params, PRNGKey

# arviz-stats (1.3) flags a rank-normalised split R-hat above 1.01 in `diagnose`,
# the threshold of Vehtari et al., Bayesian Analysis 16(2), 2021.
RHAT_THRESHOLD = 1.01
# With an ESS of 400 the Monte Carlo standard error of a mean is 1/√400 = 5 % of
# the standard deviation, small enough for R-hat and the error bars to be stable.
MIN_ESS = 400


class ChainsNotMixedWarning(UserWarning):
    """Fantasy chains have not mixed: R-hat or ESS failed its threshold."""


def fantasy_trace(
    rng_key: PRNGKey,
    model: EnergyModel,
    kernel: Kernel,
    chains: Any,
    params: Params,
    *,
    num_sweeps: int = 500,
    statistics: Mapping[str, Callable[[dict[str, Array]], Array]] | None = None,
    include_sites: bool = False,
) -> xarray.DataTree:
    """Run the chains ``num_sweeps`` kernel steps at fixed θ and record their trace.

    Parameters
    ----------
    rng_key
        Random key.
    model
        The energy model the chains sample.
    kernel
        The kernel that advanced the chains.
    chains
        Kernel states with a leading chain axis, for example ``result.chains``
        of a training run.
    params
        Unconstrained parameters held fixed during the run.
    num_sweeps
        Number of kernel steps to record (the ``draw`` dimension).
    statistics
        Extra per-chain scalars to record, as functions of one chain's visible
        configuration (a dict of site name to array), for example the
        magnetisation ``lambda x: x["v"].mean()``.
    include_sites
        Also record the visible sites themselves (``num_chains × num_sweeps``
        copies of every configuration).

    Returns
    -------
    xarray.DataTree
        ``posterior`` contains ``energy`` (and the statistics and sites) with
        dimensions ``chain`` and ``draw``, and ``sample_stats`` contains the kernel's
        per-step info. arviz-stats and arviz-plots functions accept it as is.

    Examples
    --------
    >>> import jax
    >>> from numpyro_ebm.kernels import block_gibbs
    >>> from numpyro_ebm.models import BernoulliRBM
    >>> rbm = BernoulliRBM(6, 2)
    >>> kernel, params = block_gibbs(rbm), rbm.init_params()
    >>> keys = jax.random.split(jax.random.key(0), 4)
    >>> v = jax.numpy.zeros((4, 6))
    >>> chains = jax.vmap(kernel.init, (0, 0, None))(keys, {"v": v}, params)
    >>> trace = fantasy_trace(jax.random.key(1), rbm, kernel, chains, params, num_sweeps=50)
    >>> trace.posterior["energy"].shape
    (4, 50)
    """
    if not isinstance(num_sweeps, int | np.integer) or num_sweeps < 4:
        raise ValueError(
            f"`num_sweeps` must be an integer of at least 4; got {num_sweeps!r}."
        )
    statistics = dict(statistics or {})
    draws, infos = _run_trace(
        rng_key, model, kernel, chains, params, num_sweeps, statistics, include_sites
    )
    # scan stacks sweeps first; ArviZ expects (chain, draw, ...).
    posterior = {k: np.swapaxes(np.asarray(v), 0, 1) for k, v in draws.items()}
    sample_stats = (
        {k: np.swapaxes(np.asarray(v), 0, 1) for k, v in infos._asdict().items()}
        if hasattr(infos, "_asdict")
        else {}
    )
    return arviz_base.from_dict({"posterior": posterior, "sample_stats": sample_stats})


def _run_trace(rng_key, model, kernel, chains, params, num_sweeps, statistics, include):
    @jax.jit
    def run(rng_key, chains, params):
        def sweep(chains, key):
            count = jax.tree.leaves(chains.position)[0].shape[0]
            keys = jax.random.split(key, count)
            chains, info = jax.vmap(kernel.step, in_axes=(0, 0, None))(
                keys, chains, params
            )
            position = chains.position
            record = {"energy": model.energy(params, position)}
            for name, fn in statistics.items():
                record[name] = jax.vmap(fn)(position)
            if include:
                record.update(position)
            return chains, (record, info)

        _, (records, infos) = jax.lax.scan(
            sweep, chains, jax.random.split(rng_key, num_sweeps)
        )
        return records, infos

    return run(rng_key, chains, params)


def chain_summary(
    trace: xarray.DataTree, var_names: list[str] | None = None
) -> pd.DataFrame:
    """Return R-hat and bulk/tail ESS of the traced variables (arviz-stats).

    Examples
    --------
    >>> import numpy as np, arviz_base
    >>> trace = arviz_base.from_dict(
    ...     {"posterior": {"energy": np.random.default_rng(0).normal(size=(4, 100))}}
    ... )
    >>> list(chain_summary(trace).columns)[:3]
    ['ess_bulk', 'ess_tail', 'r_hat']
    """
    return arviz_stats.summary(trace, var_names=var_names, kind="diagnostics")


def check_mixing(
    trace: xarray.DataTree,
    *,
    rhat_threshold: float = RHAT_THRESHOLD,
    min_ess: float = MIN_ESS,
    var_names: list[str] | None = None,
    warn: bool = True,
) -> dict[str, float]:
    """Compute the worst R-hat and ESS of a trace and warn when they fail.

    Returns
    -------
    dict
        ``max_rhat``, ``min_ess_bulk``, ``min_ess_tail`` and ``mixed`` (1.0 if
        both thresholds pass, else 0.0). Chains that never change give an
        undefined R-hat, reported as ``max_rhat = inf`` and ESS 0.

    Warns
    -----
    ChainsNotMixedWarning
        When the maximum R-hat exceeds ``rhat_threshold`` or an ESS is below
        ``min_ess``.
    """
    if trace.posterior.sizes.get("chain", 0) < 2:
        raise ValueError(
            "`trace` has fewer than 2 chains; R-hat compares chains, so trace at "
            "least 2 (and preferably 4 or more)."
        )
    with warnings.catch_warnings():
        # Chains that never move have zero variance; arviz-stats then divides by
        # zero and returns NaN, which is reported below rather than warned about.
        warnings.simplefilter("ignore", RuntimeWarning)
        summary = chain_summary(trace, var_names=var_names)
    rhat = summary["r_hat"].to_numpy(dtype=float)
    ess = summary[["ess_bulk", "ess_tail"]].to_numpy(dtype=float, copy=True)
    # A variable whose R-hat is undefined never changed: its ESS is meaningless.
    ess[np.isnan(rhat)] = 0.0
    # An undefined R-hat means a chain stayed constant: no evidence of mixing.
    result = {
        "max_rhat": float(np.inf if np.isnan(rhat).any() else rhat.max()),
        "min_ess_bulk": float(np.nan_to_num(ess[:, 0], nan=0.0).min()),
        "min_ess_tail": float(np.nan_to_num(ess[:, 1], nan=0.0).min()),
    }
    min_ess_found = min(result["min_ess_bulk"], result["min_ess_tail"])
    mixed = result["max_rhat"] <= rhat_threshold and min_ess_found >= min_ess
    result["mixed"] = float(mixed)
    if warn and not mixed:
        warnings.warn(
            f"the fantasy chains have not mixed: max R-hat {result['max_rhat']:.3f} "
            f"(threshold {rhat_threshold}), min ESS {min_ess_found:.0f} (threshold "
            f"{min_ess}). Run more sweeps per update or more chains, lower the "
            "learning rate, or use parallel tempering (kernels.parallel_tempering).",
            ChainsNotMixedWarning,
            stacklevel=2,
        )
    return result
