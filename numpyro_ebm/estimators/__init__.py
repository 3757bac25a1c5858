"""Estimators of log Z, likelihoods and their gradients for energy models."""

from numpyro_ebm.estimators.exact import (
    MAX_EXACT_CONFIGURATIONS,
    entropy,
    exact_gradient,
    kl_divergence,
    log_likelihood,
    log_partition,
)

__all__ = [
    "MAX_EXACT_CONFIGURATIONS",
    "entropy",
    "exact_gradient",
    "kl_divergence",
    "log_likelihood",
    "log_partition",
]
