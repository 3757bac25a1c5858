"""Maximum-likelihood learning with MCMC fantasy particles."""

from numpyro_ebm.learning.learner import MaximumLikelihood, default_kernel
from numpyro_ebm.learning.penalty import Penalty, penalty_energy
from numpyro_ebm.learning.state import (
    LearnerState,
    TrainingDivergedError,
    TrainingHistory,
    TrainingResult,
    UpdateMetrics,
)

__all__ = [
    "LearnerState",
    "MaximumLikelihood",
    "Penalty",
    "TrainingDivergedError",
    "TrainingHistory",
    "TrainingResult",
    "UpdateMetrics",
    "default_kernel",
    "penalty_energy",
]
