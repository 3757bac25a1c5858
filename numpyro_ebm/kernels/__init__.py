"""Fantasy-particle kernels: pure ``init``/``step`` pairs and NumPyro kernel classes."""

from numpyro_ebm.kernels.base import EnergyMCMCKernel, Kernel, random_position
from numpyro_ebm.kernels.block_gibbs import (
    BlockGibbs,
    BlockGibbsInfo,
    BlockGibbsState,
    block_gibbs,
)
from numpyro_ebm.kernels.site_gibbs import (
    SiteGibbs,
    SiteGibbsInfo,
    SiteGibbsState,
    site_gibbs,
)

__all__ = [
    "BlockGibbs",
    "BlockGibbsInfo",
    "BlockGibbsState",
    "EnergyMCMCKernel",
    "Kernel",
    "SiteGibbs",
    "SiteGibbsInfo",
    "SiteGibbsState",
    "block_gibbs",
    "random_position",
    "site_gibbs",
]
