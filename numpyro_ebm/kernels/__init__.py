"""Fantasy-particle kernels: pure ``init``/``step`` pairs and NumPyro kernel classes."""

from numpyro_ebm.kernels.base import EnergyMCMCKernel, Kernel, random_position
from numpyro_ebm.kernels.block_gibbs import (
    BlockGibbs,
    BlockGibbsInfo,
    BlockGibbsState,
    block_gibbs,
)
from numpyro_ebm.kernels.checkerboard import (
    CheckerboardHeatBath,
    CheckerboardInfo,
    CheckerboardMetropolis,
    CheckerboardState,
    checkerboard_heat_bath,
    checkerboard_metropolis,
)
from numpyro_ebm.kernels.gibbs_with_gradients import (
    GibbsWithGradients,
    GibbsWithGradientsInfo,
    GibbsWithGradientsState,
    gibbs_with_gradients,
)
from numpyro_ebm.kernels.local_field import (
    LocalFieldGibbs,
    LocalFieldGibbsInfo,
    LocalFieldGibbsState,
    local_field_gibbs,
)
from numpyro_ebm.kernels.site_gibbs import (
    SiteGibbs,
    SiteGibbsInfo,
    SiteGibbsState,
    site_gibbs,
)
from numpyro_ebm.kernels.tempering import (
    ParallelTempering,
    ParallelTemperingInfo,
    ParallelTemperingState,
    geometric_ladder,
    parallel_tempering,
)

__all__ = [
    "BlockGibbs",
    "BlockGibbsInfo",
    "BlockGibbsState",
    "CheckerboardHeatBath",
    "CheckerboardInfo",
    "CheckerboardMetropolis",
    "CheckerboardState",
    "EnergyMCMCKernel",
    "GibbsWithGradients",
    "GibbsWithGradientsInfo",
    "GibbsWithGradientsState",
    "Kernel",
    "LocalFieldGibbs",
    "LocalFieldGibbsInfo",
    "LocalFieldGibbsState",
    "ParallelTempering",
    "ParallelTemperingInfo",
    "ParallelTemperingState",
    "SiteGibbs",
    "SiteGibbsInfo",
    "SiteGibbsState",
    "block_gibbs",
    "checkerboard_heat_bath",
    "checkerboard_metropolis",
    "geometric_ladder",
    "gibbs_with_gradients",
    "local_field_gibbs",
    "parallel_tempering",
    "random_position",
    "site_gibbs",
]
