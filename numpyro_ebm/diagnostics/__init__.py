"""Diagnostics of the fantasy chains: ArviZ traces, R-hat/ESS, warnings and plots."""

from numpyro_ebm.diagnostics.plots import plot_learning_curves, plot_particles
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
    "RHAT_THRESHOLD",
    "ChainsNotMixedWarning",
    "chain_summary",
    "check_mixing",
    "fantasy_trace",
    "plot_learning_curves",
    "plot_particles",
]
