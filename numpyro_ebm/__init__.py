"""Energy-based models in NumPyro, trained by maximum likelihood."""

from numpyro_ebm.learning import MaximumLikelihood, Penalty
from numpyro_ebm.models import (
    BernoulliRBM,
    EnergyModel,
    IsingLattice,
    Potts,
    Site,
    SpinGlass,
)

__version__ = "0.1.0"

__all__ = [
    "BernoulliRBM",
    "EnergyModel",
    "IsingLattice",
    "MaximumLikelihood",
    "Penalty",
    "Potts",
    "Site",
    "SpinGlass",
    "__version__",
]
