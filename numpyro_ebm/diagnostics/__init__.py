"""Diagnostics of the fantasy chains: ArviZ traces, R-hat/ESS, warnings and plots."""

from numpyro_ebm.diagnostics.monitor import TrainingMonitor, history_dataset, log_spaced
from numpyro_ebm.diagnostics.plots import (
    plot_filters,
    plot_learning_curves,
    plot_moments,
    plot_particles,
    plot_rank,
    plot_trace,
)
from numpyro_ebm.diagnostics.stationarity import (
    DriftResult,
    StationarityResult,
    stationarity_check,
    statistics_drift_check,
)
from numpyro_ebm.diagnostics.thresholds import (
    PARAMETER_MAGNITUDE_LIMIT,
    SATURATED_UNIT_FRACTION,
    SATURATION_PROBABILITY,
    EnergyGapWarning,
    ParameterGrowthWarning,
    SaturationWarning,
)
from numpyro_ebm.diagnostics.trace import (
    MIN_ESS,
    RHAT_THRESHOLD,
    ChainsNotMixedWarning,
    chain_summary,
    check_mixing,
    fantasy_trace,
)

__all__ = [
    "MIN_ESS",
    "PARAMETER_MAGNITUDE_LIMIT",
    "RHAT_THRESHOLD",
    "SATURATED_UNIT_FRACTION",
    "SATURATION_PROBABILITY",
    "ChainsNotMixedWarning",
    "DriftResult",
    "EnergyGapWarning",
    "ParameterGrowthWarning",
    "SaturationWarning",
    "StationarityResult",
    "TrainingMonitor",
    "chain_summary",
    "check_mixing",
    "fantasy_trace",
    "history_dataset",
    "log_spaced",
    "plot_filters",
    "plot_learning_curves",
    "plot_moments",
    "plot_particles",
    "plot_rank",
    "plot_trace",
    "stationarity_check",
    "statistics_drift_check",
]
