"""Checkpoints of the fantasy chains during training, collected in one DataTree.

:class:`TrainingMonitor` is an epoch callback for
:meth:`~numpyro_ebm.learning.MaximumLikelihood.run`. At log-spaced (or chosen)
epochs it copies the persistent chains and runs them at the then-current θ
for a short trace. It records the energy and chosen statistics per chain per
sweep and computes R-hat, bulk and tail ESS and the integrated
autocorrelation time with arviz-stats. Given data, it also runs chains started
from data and chains started from noise and compares the two groups, the
standard test of whether the model is sampled at equilibrium: if both groups
agree, the sampler forgets where it started within the trace. Training itself
is not affected: the checkpoint chains are copies.
"""

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import xarray

from numpyro_ebm.diagnostics.thresholds import (
    check_energy_gap,
    check_parameters,
    check_saturation,
)
from numpyro_ebm.diagnostics.trace import (
    RHAT_THRESHOLD,
    ChainsNotMixedWarning,
    check_mixing,
    fantasy_trace,
)
from numpyro_ebm.kernels.base import Kernel, random_position
from numpyro_ebm.learning.state import LearnerState, TrainingHistory
from numpyro_ebm.models.energy import EnergyModel
from numpyro_ebm.types import Array, PRNGKey


def log_spaced(epoch: int) -> bool:
    """Return whether ``epoch`` is 1 or a power of two."""
    return epoch >= 1 and (epoch & (epoch - 1)) == 0


class TrainingMonitor:
    """Record fantasy-chain diagnostics at checkpoints during training.

    Parameters
    ----------
    model, kernel
        The model being trained and the kernel of its fantasy particles.
    rng_key
        Random key for the checkpoint runs.
    data
        Training data (or a sample of it). When given, every checkpoint also
        compares chains started from data with chains started from noise, and
        the saturation and energy-gap checks use it.
    epochs
        Epochs at which to record; log-spaced (1, 2, 4, 8, ...) by default.
        :meth:`checkpoint` records at any other time, for example after the
        last epoch.
    num_sweeps
        Sweeps of each checkpoint trace.
    num_chains
        Chains per trace: the first ``num_chains`` persistent chains, and as
        many data-started and noise-started chains. By default all persistent
        chains are traced, with 16 per group for the data-versus-noise
        comparison.
    statistics
        Extra per-chain scalars to trace, as functions of one visible
        configuration (a dict of site name to array).
    warn
        Issue warnings when a check fails (see
        :mod:`numpyro_ebm.diagnostics.thresholds`).

    Examples
    --------
    >>> import jax, optax
    >>> from numpyro_ebm.learning import MaximumLikelihood
    >>> from numpyro_ebm.models import BernoulliRBM
    >>> rbm = BernoulliRBM(6, 2)
    >>> data = jax.random.bernoulli(jax.random.key(0), 0.3, (40, 6))
    >>> learner = MaximumLikelihood(rbm, optax.sgd(0.05), num_chains=8)
    >>> monitor = TrainingMonitor(rbm, learner.kernel, jax.random.key(1), data=data,
    ...                           num_sweeps=50, warn=False)
    >>> result = learner.run(jax.random.key(2), data, num_epochs=2, batch_size=10,
    ...                      progress_bar=False, callbacks=[monitor])
    >>> sorted(monitor.to_datatree(result.history).children)
    ['checkpoints', 'data_vs_noise', 'history', 'summary']
    """

    def __init__(
        self,
        model: EnergyModel,
        kernel: Kernel,
        rng_key: PRNGKey,
        *,
        data: Any = None,
        epochs: Sequence[int] | Callable[[int], bool] = log_spaced,
        num_sweeps: int = 200,
        num_chains: int | None = None,
        statistics: Mapping[str, Callable[[dict[str, Array]], Array]] | None = None,
        warn: bool = True,
    ):
        self.model = model
        self.kernel = kernel
        self.rng_key = rng_key
        self.data = None if data is None else model.as_configuration(data, name="data")
        self.epochs = epochs
        self.num_sweeps = num_sweeps
        self.num_chains = num_chains
        self.statistics = dict(statistics or {})
        self.warn = warn
        self.traces: dict[int, xarray.DataTree] = {}
        self.group_traces: dict[int, xarray.DataTree] = {}
        self.summaries: dict[int, dict[str, float]] = {}

    def __call__(self, epoch: int, state: LearnerState) -> None:
        """Record a checkpoint if ``epoch`` is one of the monitored epochs."""
        scheduled = (
            self.epochs(epoch) if callable(self.epochs) else epoch in self.epochs
        )
        if scheduled:
            self.checkpoint(epoch, state)

    def checkpoint(self, epoch: int, state: LearnerState) -> dict[str, float]:
        """Trace the chains at ``state.params`` and return the checkpoint summary."""
        key = jax.random.fold_in(self.rng_key, epoch)
        key_trace, key_groups = jax.random.split(key)
        chains = state.chains
        if self.num_chains is not None:
            chains = jax.tree.map(lambda x: x[: self.num_chains], chains)
        trace = fantasy_trace(
            key_trace,
            self.model,
            self.kernel,
            chains,
            state.params,
            num_sweeps=self.num_sweeps,
            statistics=self.statistics,
        )
        self.traces[epoch] = trace
        summary = self._mixing_summary(trace)
        if self.data is not None:
            summary.update(self._data_versus_noise(key_groups, epoch, state.params))
            summary.update(self._data_checks(epoch, state, trace))
        summary.update(
            check_parameters(self.model.constrain(state.params), epoch, self.warn)
        )
        self.summaries[epoch] = summary
        return summary

    def _mixing_summary(self, trace: xarray.DataTree) -> dict[str, float]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ChainsNotMixedWarning)
            mixing = check_mixing(trace)
        draws = trace.posterior.sizes["chain"] * trace.posterior.sizes["draw"]
        summary = {
            "max_rhat": mixing["max_rhat"],
            "min_ess_bulk": mixing["min_ess_bulk"],
            "min_ess_tail": mixing["min_ess_tail"],
            # Integrated autocorrelation time in sweeps, τ = N / ESS_bulk.
            "autocorrelation_time": draws / max(mixing["min_ess_bulk"], 1.0),
            "mixed": mixing["mixed"],
        }
        if self.warn and not mixing["mixed"]:
            warnings.warn(
                f"the fantasy chains have not mixed at this checkpoint: max R-hat "
                f"{summary['max_rhat']:.3f}, min ESS {summary['min_ess_bulk']:.0f}. Run "
                "more sweeps per update or more chains, or lower the learning rate.",
                ChainsNotMixedWarning,
                stacklevel=3,
            )
        return summary

    def _data_versus_noise(self, rng_key, epoch: int, params) -> dict[str, float]:
        count = self.num_chains or 16
        key_rows, key_noise, key_data_init, key_noise_init, key_run = jax.random.split(
            rng_key, 5
        )
        num_data = jax.tree.leaves(self.data)[0].shape[0]
        rows = jax.random.choice(key_rows, num_data, (count,), replace=count > num_data)
        from_data = jax.tree.map(lambda x: x[rows], self.data)
        sites = self.model.visible_sites
        from_noise = jax.vmap(lambda k: random_position(k, sites))(
            jax.random.split(key_noise, count)
        )
        position = jax.tree.map(
            lambda a, b: jnp.concatenate([a, b]), from_data, from_noise
        )
        keys = jax.random.split(key_data_init, 2 * count)
        chains = jax.vmap(self.kernel.init, (0, 0, None))(keys, position, params)
        trace = fantasy_trace(
            key_run, self.model, self.kernel, chains, params, num_sweeps=self.num_sweeps
        )
        start = np.array(["data"] * count + ["noise"] * count)
        trace["posterior"] = trace.posterior.to_dataset().assign_coords(
            start=("chain", start)
        )
        self.group_traces[epoch] = trace
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ChainsNotMixedWarning)
            rhat = check_mixing(trace, var_names=["energy"])["max_rhat"]
        energy = trace.posterior["energy"].values
        second_half = energy[:, energy.shape[1] // 2 :].mean(axis=1)
        difference = second_half[:count].mean() - second_half[count:].mean()
        spread = np.sqrt(
            second_half[:count].var(ddof=1) / count
            + second_half[count:].var(ddof=1) / count
        )
        z = float(difference / spread) if spread > 0 else 0.0
        if self.warn and rhat > RHAT_THRESHOLD:
            warnings.warn(
                f"chains started from data and from noise disagree after "
                f"{self.num_sweeps} sweeps (R-hat {rhat:.3f}, energy difference "
                f"{difference:.3g}, {z:.1f} standard errors): the model is not sampled "
                "at equilibrium. Use more sweeps per update or parallel tempering.",
                ChainsNotMixedWarning,
                stacklevel=3,
            )
        return {
            "rhat_data_vs_noise": rhat,
            "energy_difference_data_vs_noise": float(difference),
            "z_data_vs_noise": z,
        }

    def _data_checks(self, epoch, state, trace) -> dict[str, float]:
        summary = {}
        data_energy = float(jnp.mean(self.model.energy(state.params, self.data)))
        fantasy_energy = float(trace.posterior["energy"].values.mean())
        summary["energy_gap"] = data_energy - fantasy_energy
        gaps = [s["energy_gap"] for s in self.summaries.values() if "energy_gap" in s]
        check_energy_gap(gaps + [summary["energy_gap"]], epoch, self.warn)
        if callable(getattr(self.model, "hidden_probs", None)):
            name = self.model.visible_sites[0].name
            probs = self.model.hidden_probs(state.params, self.data[name])
            summary.update(check_saturation(np.asarray(probs), epoch, self.warn))
        return summary

    def to_datatree(self, history: TrainingHistory | None = None) -> xarray.DataTree:
        """Collect every checkpoint, the summaries and the history in one DataTree.

        Groups: ``checkpoints/epoch_NNNN`` (the fantasy traces, each with
        ``posterior`` and ``sample_stats``), ``data_vs_noise/epoch_NNNN`` (the
        two-group traces, with a ``start`` coordinate on the chains),
        ``summary`` (one row per checkpoint) and, given ``history``,
        ``history`` (per update and per evaluated epoch).
        """
        tree = xarray.DataTree()
        for name, traces in (
            ("checkpoints", self.traces),
            ("data_vs_noise", self.group_traces),
        ):
            group = xarray.DataTree()
            for epoch, trace in traces.items():
                group[f"epoch_{epoch:04d}"] = trace
            tree[name] = group
        if self.summaries:
            epochs = sorted(self.summaries)
            names = sorted({k for s in self.summaries.values() for k in s})
            summary = {
                k: ("epoch", [self.summaries[e].get(k, np.nan) for e in epochs])
                for k in names
            }
            tree["summary"] = xarray.DataTree(
                xarray.Dataset(summary, coords={"epoch": epochs})
            )
        if history is not None:
            tree["history"] = xarray.DataTree(history_dataset(history))
        return tree


def history_dataset(history: TrainingHistory) -> xarray.Dataset:
    """Return a training history as an xarray Dataset (dimensions ``update``, ``epoch``)."""
    variables = {
        name: ("update", np.asarray(getattr(history, name)))
        for name in ("data_energy", "fantasy_energy", "energy_gap", "grad_norm")
    }
    for name, values in history.kernel_info.items():
        variables[f"kernel_{name}"] = ("update", np.asarray(values))
    for name, values in history.metrics.items():
        variables[name] = ("epoch", np.asarray(values))
    coords = {"update": np.arange(1, history.energy_gap.size + 1)}
    if history.metrics:
        coords["epoch"] = np.asarray(history.metric_epochs)
    return xarray.Dataset(variables, coords=coords)
