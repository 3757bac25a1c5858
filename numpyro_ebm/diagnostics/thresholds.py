"""Named thresholds and the warnings of training checks.

Each threshold is a module constant with the reason for its value, so users can
read, cite and override it. The R-hat and ESS thresholds live in
:mod:`numpyro_ebm.diagnostics.trace`.
"""

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from numpyro_ebm.types import Array

# A hidden unit whose activation probability is above this (or below one minus
# it) carries almost no information about the input, and the derivative of its
# sigmoid, p (1 − p) < 0.01, nearly stops its weights from learning.
SATURATION_PROBABILITY = 0.99
# A unit counts as saturated when it is saturated on at least this fraction of
# the examples.
SATURATED_EXAMPLE_FRACTION = 0.95
# Warn when more than this fraction of the hidden units is saturated: a few dead
# units are common, most of the layer being dead means the learning rate or the
# initial weights are too large.
SATURATED_UNIT_FRACTION = 0.2
# exp overflows float32 above about 88.7, so parameters of magnitude 1e3 give
# energies that only log-space code survives. Growth to that size usually means
# that the likelihood is unbounded in that direction (for example a pixel that
# is always on), so a penalty is needed.
PARAMETER_MAGNITUDE_LIMIT = 1e3
# Warn when |data energy − fantasy energy| has grown at each of this many
# consecutive checkpoints ...
GAP_GROWTH_CHECKPOINTS = 3
# ... and is this many times its smallest earlier value: a widening gap means
# the chains no longer follow the model, so the gradient is biased.
GAP_GROWTH_FACTOR = 2.0


class SaturationWarning(UserWarning):
    """Many hidden units are saturated (activation probability near 0 or 1)."""


class ParameterGrowthWarning(UserWarning):
    """A parameter has grown beyond ``PARAMETER_MAGNITUDE_LIMIT``."""


class EnergyGapWarning(UserWarning):
    """The gap between data and fantasy energies keeps widening."""


def check_saturation(probs: Array, epoch: int, warn: bool = True) -> dict[str, float]:
    """Return the fraction of saturated hidden units and warn when it is large.

    Parameters
    ----------
    probs
        Activation probabilities p(h_j = 1 | v) of shape (examples, units).
    epoch
        Epoch, named in the warning.
    warn
        Issue :class:`SaturationWarning` when the fraction exceeds
        ``SATURATED_UNIT_FRACTION``.

    Examples
    --------
    >>> import numpy as np
    >>> check_saturation(np.full((10, 4), 0.5), epoch=1)
    {'saturated_fraction': 0.0}
    """
    probs = np.asarray(probs, dtype=np.float64)
    saturated = (probs > SATURATION_PROBABILITY) | (
        probs < 1.0 - SATURATION_PROBABILITY
    )
    per_unit = saturated.mean(axis=0) >= SATURATED_EXAMPLE_FRACTION
    fraction = float(per_unit.mean())
    if warn and fraction > SATURATED_UNIT_FRACTION:
        warnings.warn(
            f"at epoch {epoch}, {fraction:.0%} of the hidden units are saturated "
            f"(activation probability beyond {SATURATION_PROBABILITY} or below "
            f"{1 - SATURATION_PROBABILITY:.2f} on {SATURATED_EXAMPLE_FRACTION:.0%} of the "
            "examples). Lower the learning rate or the initial weight scale, or add an "
            "L2 penalty on the weights.",
            SaturationWarning,
            stacklevel=3,
        )
    return {"saturated_fraction": fraction}


def check_parameters(
    params: Mapping[str, Array], epoch: int, warn: bool = True
) -> dict[str, float]:
    """Return the largest parameter magnitude and warn when it is too large.

    Examples
    --------
    >>> import numpy as np
    >>> check_parameters({"w": np.array([1.0, -3.0])}, epoch=1)
    {'max_abs_parameter': 3.0}
    """
    largest = {name: float(np.max(np.abs(np.asarray(v)))) for name, v in params.items()}
    name = max(largest, key=largest.get) if largest else None
    value = largest[name] if name else 0.0
    if warn and value > PARAMETER_MAGNITUDE_LIMIT:
        warnings.warn(
            f"at epoch {epoch} the parameter {name!r} reached magnitude {value:.3g}, "
            f"above PARAMETER_MAGNITUDE_LIMIT = {PARAMETER_MAGNITUDE_LIMIT:g}; the "
            "likelihood may be unbounded in that direction. Add an L2 penalty "
            "(Penalty(l2={...})) or a pseudocount to the data.",
            ParameterGrowthWarning,
            stacklevel=3,
        )
    return {"max_abs_parameter": value}


def check_energy_gap(gaps: Sequence[float], epoch: int, warn: bool = True) -> bool:
    """Return whether the energy gap keeps widening, and warn if it does.

    Parameters
    ----------
    gaps
        Data minus fantasy energy at each checkpoint so far, oldest first.

    Examples
    --------
    >>> check_energy_gap([0.1, 0.2, 0.4, 0.9], epoch=8, warn=False)
    True
    """
    magnitudes = np.abs(np.asarray(gaps, dtype=np.float64))
    if magnitudes.size <= GAP_GROWTH_CHECKPOINTS:
        return False
    recent = magnitudes[-(GAP_GROWTH_CHECKPOINTS + 1) :]
    growing = bool(np.all(np.diff(recent) > 0))
    smallest = magnitudes[:-1].min()
    widening = growing and bool(
        magnitudes[-1] > GAP_GROWTH_FACTOR * max(smallest, 1e-12)
    )
    if warn and widening:
        warnings.warn(
            f"at epoch {epoch} the gap between data and fantasy energies has widened "
            f"at {GAP_GROWTH_CHECKPOINTS} consecutive checkpoints to {gaps[-1]:.3g}: the "
            "fantasy chains lag behind the model. Use more sweeps per update, more "
            "chains, parallel tempering, or a lower learning rate.",
            EnergyGapWarning,
            stacklevel=3,
        )
    return widening
