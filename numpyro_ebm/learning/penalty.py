"""L1 and L2 penalties on chosen parameters."""

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import jax.numpy as jnp

from numpyro_ebm.types import Array, Params


class Penalty(NamedTuple):
    r"""Coefficients of the penalty energy added to the training objective.

    .. math::

        E_{reg}(θ) = Σ_k λ_1^{(k)} ‖θ_k‖_1 + \tfrac{1}{2} Σ_k λ_2^{(k)} ‖θ_k‖_2^2
            + α \left(\overline{E_θ(x_{data})^2} + \overline{E_θ(x_{fantasy})^2}\right),

    so the L2 term contributes λ₂·θ to the gradient ("weight decay").
    Penalties act on constrained parameter values. The last term, with
    coefficient α = ``energy_magnitude``, keeps the energies of neural models
    near zero (Du & Mordatch, "Implicit generation and modeling with
    energy-based models", NeurIPS 2019).

    Attributes
    ----------
    l1, l2
        Coefficients keyed by parameter name; parameters not listed are not
        penalised. For example ``Penalty(l2={"weights": 1e-4})``.
    energy_magnitude
        Coefficient α of the squared-energy term.
    """

    l1: Mapping[str, float] = {}
    l2: Mapping[str, float] = {}
    energy_magnitude: float = 0.0

    def check(self, param_names: Iterable[str]) -> None:
        """Raise ``ValueError`` for unknown parameter names or negative coefficients."""
        names = set(param_names)
        for kind, coefficients in (("l1", self.l1), ("l2", self.l2)):
            if not isinstance(coefficients, Mapping):
                raise TypeError(
                    f"`Penalty.{kind}` must map parameter names to coefficients, "
                    f'for example {{"weights": 1e-4}}; got {coefficients!r}.'
                )
            for name, value in coefficients.items():
                if name not in names:
                    raise ValueError(
                        f"`Penalty.{kind}` names the parameter {name!r}, which the "
                        f"model does not have; its parameters are {sorted(names)}."
                    )
                if not value >= 0:
                    raise ValueError(
                        f"`Penalty.{kind}[{name!r}]` must be non-negative; got {value}."
                    )
        if not self.energy_magnitude >= 0:
            raise ValueError(
                "`Penalty.energy_magnitude` must be non-negative; got "
                f"{self.energy_magnitude}."
            )


def penalty_energy(penalty: Penalty, params: Params) -> Array:
    """Return E_reg(θ) for constrained parameters ``params``."""
    total = jnp.zeros(())
    for name, coefficient in penalty.l1.items():
        total = total + coefficient * jnp.sum(jnp.abs(params[name]))
    for name, coefficient in penalty.l2.items():
        total = total + 0.5 * coefficient * jnp.sum(jnp.square(params[name]))
    return total
