"""Energy-based models in NumPyro, trained by maximum likelihood."""

from numpyro_ebm.learning import MaximumLikelihood, Penalty
from numpyro_ebm.models import (
    BernoulliRBM,
    EnergyModel,
    GaussianBernoulliRBM,
    GaussianEnergy,
    IsingLattice,
    NeuralEnergy,
    Potts,
    Site,
    SpinGlass,
)

__version__ = "0.1.0"

__all__ = [
    "BernoulliRBM",
    "EnergyModel",
    "GaussianBernoulliRBM",
    "GaussianEnergy",
    "IsingLattice",
    "MaximumLikelihood",
    "NeuralEnergy",
    "Penalty",
    "Potts",
    "Site",
    "SpinGlass",
    "__version__",
]
