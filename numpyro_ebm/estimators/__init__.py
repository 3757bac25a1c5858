"""Estimators of log Z, likelihoods and their gradients for energy models."""

from numpyro_ebm.estimators.ais import (
    AISResult,
    LogLikelihoodEstimate,
    ais,
    ais_log_likelihood,
    ais_metric,
    default_schedule,
    reverse_ais,
)
from numpyro_ebm.estimators.exact import (
    MAX_EXACT_CONFIGURATIONS,
    entropy,
    exact_gradient,
    kl_divergence,
    log_likelihood,
    log_partition,
)
from numpyro_ebm.estimators.moments import (
    MomentComparison,
    Moments,
    compare_moments,
    moments,
)
from numpyro_ebm.estimators.paths import (
    AnnealingPath,
    base_rate_logits,
    geometric_path,
    rbm_path,
)
from numpyro_ebm.estimators.pseudo_likelihood import pseudo_log_likelihood

__all__ = [
    "AISResult",
    "AnnealingPath",
    "LogLikelihoodEstimate",
    "MAX_EXACT_CONFIGURATIONS",
    "MomentComparison",
    "Moments",
    "ais",
    "ais_log_likelihood",
    "ais_metric",
    "base_rate_logits",
    "compare_moments",
    "default_schedule",
    "entropy",
    "exact_gradient",
    "geometric_path",
    "kl_divergence",
    "log_likelihood",
    "log_partition",
    "moments",
    "pseudo_log_likelihood",
    "rbm_path",
    "reverse_ais",
]
