"""Energy models: the abstraction and the built-in models."""

from numpyro_ebm.models.energy import EnergyModel
from numpyro_ebm.models.pairwise import Potts, SpinGlass
from numpyro_ebm.models.rbm import BernoulliRBM
from numpyro_ebm.models.sites import BINARY, SPIN, Site

__all__ = [
    "BINARY",
    "SPIN",
    "BernoulliRBM",
    "EnergyModel",
    "Potts",
    "Site",
    "SpinGlass",
]
