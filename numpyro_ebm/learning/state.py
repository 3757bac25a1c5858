"""State, metrics and results of the maximum-likelihood learner."""

from typing import Any, NamedTuple

import numpy as np

from numpyro_ebm.types import Array, PRNGKey


class LearnerState(NamedTuple):
    """Everything a training run carries from one update to the next.

    Attributes
    ----------
    params
        Unconstrained parameters θ.
    opt_state
        Optax optimiser state.
    chains
        Kernel states of the fantasy chains, with a leading chain axis.
    rng_key
        Random key for the next update.
    step
        Number of updates taken so far.
    """

    params: dict[str, Array]
    opt_state: Any
    chains: Any
    rng_key: PRNGKey
    step: Array


class UpdateMetrics(NamedTuple):
    """Quantities recorded at every update.

    Attributes
    ----------
    data_energy
        Weighted mean energy of the minibatch, before the parameter step.
    fantasy_energy
        Mean energy of the fantasy particles after the sweeps.
    energy_gap
        ``data_energy − fantasy_energy``; it approaches a constant near
        equilibrium and drifts when the chains lag behind the model.
    grad_norm
        Global norm of the likelihood gradient (penalty included).
    kernel_info
        Each field of the kernel's ``Info`` at the last sweep, averaged over
        the chains (for example the acceptance rate of a Metropolis kernel).
    """

    data_energy: Array
    fantasy_energy: Array
    energy_gap: Array
    grad_norm: Array
    kernel_info: dict[str, Array]


class TrainingHistory(NamedTuple):
    """History of a training run as NumPy arrays.

    Attributes
    ----------
    data_energy, fantasy_energy, energy_gap, grad_norm
        One value per update, see :class:`UpdateMetrics`.
    kernel_info
        Kernel diagnostics by field name, one chain-averaged value per update.
    metrics
        User metrics by name, one value per evaluated epoch.
    metric_epochs
        The (1-based) epochs at which ``metrics`` were evaluated.
    """

    data_energy: np.ndarray
    fantasy_energy: np.ndarray
    energy_gap: np.ndarray
    grad_norm: np.ndarray
    kernel_info: dict[str, np.ndarray]
    metrics: dict[str, np.ndarray]
    metric_epochs: np.ndarray


class TrainingResult(NamedTuple):
    """Result of :meth:`MaximumLikelihood.run`.

    Attributes
    ----------
    params
        Final unconstrained parameters.
    chains
        Final kernel states of the fantasy chains.
    opt_state
        Final optimiser state.
    state
        The full :class:`LearnerState`, to continue training with
        ``run(..., init_state=result.state)``.
    history
        The :class:`TrainingHistory`.
    """

    params: dict[str, Array]
    chains: Any
    opt_state: Any
    state: LearnerState
    history: TrainingHistory


class TrainingDivergedError(FloatingPointError):
    """Raised when training produces a non-finite energy, gradient or parameter.

    Attributes
    ----------
    state
        The last learner state whose values were all finite, so that no
        training progress is lost.
    """

    def __init__(self, message: str, state: LearnerState):
        super().__init__(message)
        self.state = state
