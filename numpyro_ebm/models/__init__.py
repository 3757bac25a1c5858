"""Energy models: the abstraction and the built-in models."""

from numpyro_ebm.models.constraints import spin
from numpyro_ebm.models.energy import EnergyModel
from numpyro_ebm.models.gaussian import GaussianBernoulliRBM, GaussianEnergy
from numpyro_ebm.models.ising import (
    CRITICAL_INVERSE_TEMPERATURE,
    IsingLattice,
    ising_lattice_model,
    spontaneous_magnetisation,
    torus_energy_per_spin,
    torus_log_partition,
)
from numpyro_ebm.models.neural import NeuralEnergy, init_mlp, mlp_energy
from numpyro_ebm.models.pairwise import Potts, SpinGlass
from numpyro_ebm.models.rbm import BernoulliRBM, base_rate_bias
from numpyro_ebm.models.sites import BINARY, SPIN, Site

__all__ = [
    "BINARY",
    "CRITICAL_INVERSE_TEMPERATURE",
    "SPIN",
    "BernoulliRBM",
    "EnergyModel",
    "GaussianBernoulliRBM",
    "GaussianEnergy",
    "IsingLattice",
    "NeuralEnergy",
    "Potts",
    "Site",
    "SpinGlass",
    "base_rate_bias",
    "init_mlp",
    "ising_lattice_model",
    "mlp_energy",
    "spin",
    "spontaneous_magnetisation",
    "torus_energy_per_spin",
    "torus_log_partition",
]
