r"""Nearest-neighbour Ising model on periodic lattices.

Spins :math:`s_i ∈ \{−1, +1\}` sit on the sites of a periodic lattice (a ring,
an L×L torus, an L×L×L torus, ...) and interact with their nearest neighbours
through one coupling J and with a uniform field h:

.. math::

    E_θ(s) = −J \sum_{⟨ij⟩} s_i s_j − h \sum_i s_i,

where the sum runs over every bond of the torus once: d·N bonds on a
d-dimensional lattice of N sites. A side of length 2 couples the two sites of
that side twice, once through each face of the torus, which keeps d·N bonds
and matches the exact formulas below. The local field on site i,

.. math::

    h_i = J \sum_{j ∼ i} s_j + h,

decides everything a single-spin update needs: flipping :math:`s_i` changes
the energy by :math:`2 s_i h_i`, so the heat-bath conditional at inverse
temperature β is :math:`p(s_i = +1 \mid s_{−i}) = σ(2 β h_i)`.

On the L×L torus at zero field, :func:`torus_log_partition` and
:func:`torus_energy_per_spin` give Kaufman's exact finite-size values, and
:func:`spontaneous_magnetisation` Yang's infinite-lattice magnetisation.

References
----------
Onsager, L. (1944). Crystal statistics. I. A two-dimensional model with an
order-disorder transition. Physical Review 65(3–4). Kaufman, B. (1949).
Crystal statistics. II. Partition function evaluated by spinor analysis.
Physical Review 76(8). Yang, C. N. (1952). The spontaneous magnetization of a
two-dimensional Ising model. Physical Review 85(5).
"""

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.distributions import constraints

from numpyro_ebm.models.constraints import spin
from numpyro_ebm.models.energy import EnergyModel
from numpyro_ebm.models.sites import Site
from numpyro_ebm.types import Array, ArrayLike, Configuration, Params

# Onsager's critical point of the square lattice, β_c = ln(1 + √2) / 2 (J = 1).
CRITICAL_INVERSE_TEMPERATURE = float(np.log1p(np.sqrt(2.0)) / 2.0)


# -- lattice sums --------------------------------------------------------------


def neighbour_sum(s: Array, ndim: int) -> Array:
    """Sum of the 2·``ndim`` nearest neighbours of every site of a periodic lattice.

    The lattice occupies the last ``ndim`` axes of ``s``; leading axes are a
    batch. The lattice is padded once with its periodic images and the
    neighbours are read as shifted windows of the padded copy. On CPU this was
    never slower than 2·``ndim`` ``jnp.roll`` calls in the sweeps measured:
    18 % faster on 64×64 lattices, twice as fast on 8×8 ones, the same on
    16×16×16.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> neighbour_sum(jnp.ones((4, 4)), 2)[0, 0].item()
    4.0
    """
    batch_ndim = s.ndim - ndim
    padded = jnp.pad(s, [(0, 0)] * batch_ndim + [(1, 1)] * ndim, mode="wrap")
    centre = [slice(None)] * batch_ndim + [slice(1, -1)] * ndim
    total = jnp.zeros_like(s)
    for axis in range(batch_ndim, s.ndim):
        # Windows starting at 0 and 2 hold each site's predecessor and successor.
        for start in (0, 2):
            window = list(centre)
            window[axis] = slice(start, start + s.shape[axis])
            total = total + padded[tuple(window)]
    return total


def bond_sum(s: Array, ndim: int) -> Array:
    """Σ_⟨ij⟩ s_i s_j over the ``ndim``·N bonds of a periodic lattice.

    Each bond is counted once, as the pair of a site and its successor along
    one axis. The lattice occupies the last ``ndim`` axes of ``s``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> bond_sum(jnp.ones((2, 4, 4)), 2).tolist()
    [32.0, 32.0]
    """
    axes = tuple(range(-ndim, 0))
    products = sum(s * jnp.roll(s, 1, axis) for axis in axes)
    return jnp.sum(products, axis=axes)


# -- the model -----------------------------------------------------------------


def ising_lattice_model(
    shape: Sequence[int],
    coupling: float = 1.0,
    field: float = 0.0,
    name: str = "s",
) -> None:
    """NumPyro model of the nearest-neighbour Ising model on a periodic lattice.

    The spins form one sample site ``name`` of shape ``shape`` with the
    counting measure on {−1, +1} (``ImproperUniform`` over :data:`spin`), and
    the parameters are the param sites ``coupling`` and ``field``.
    """
    shape = tuple(shape)
    coupling = numpyro.param("coupling", jnp.asarray(coupling, dtype=float))
    field = numpyro.param("field", jnp.asarray(field, dtype=float))
    s = numpyro.sample(name, dist.ImproperUniform(spin, (), shape))
    numpyro.factor(
        "neg_energy", coupling * bond_sum(s, len(shape)) + field * jnp.sum(s)
    )


def _check_shape(shape) -> tuple[int, ...]:
    shape = (shape,) if isinstance(shape, int | np.integer) else tuple(shape)
    valid = len(shape) >= 1 and all(
        isinstance(side, int | np.integer) and side >= 2 for side in shape
    )
    if not valid:
        raise ValueError(
            "`shape` must be a tuple of integer side lengths of at least 2, such "
            f"as (L, L) for a square lattice or (L, L, L) for a cubic one; got "
            f"{shape!r}."
        )
    return tuple(int(side) for side in shape)


def _trace_params_and_site(shape, coupling, field, name):
    """Trace :func:`ising_lattice_model` for its parameters and its spin site.

    ``EnergyModel.from_numpyro`` does not know the ±1 support yet, so the site's
    domain is read from the support constraint here.
    """

    def placeholder_value(site):
        # ImproperUniform has no sampler; any spin configuration will do.
        return jnp.ones(site["fn"].shape()) if site["type"] == "sample" else None

    substituted = handlers.substitute(
        ising_lattice_model, substitute_fn=placeholder_value
    )
    trace = handlers.trace(substituted).get_trace(shape, coupling, field, name)
    init_params = {
        k: site["value"] for k, site in trace.items() if site["type"] == "param"
    }
    fn = trace[name]["fn"]
    support = fn.support
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    site = Site(name, tuple(fn.shape()), support.domain)
    return init_params, site


class IsingLattice(EnergyModel):
    """Nearest-neighbour Ising model on a periodic lattice, with J and h learnable.

    Defined by the NumPyro model :func:`ising_lattice_model`, like any user
    model, and extended with the local fields that checkerboard kernels use.
    Both parameters are unconstrained scalars: ``coupling`` J (J > 0 is
    ferromagnetic) and ``field`` h.

    Parameters
    ----------
    shape
        Side lengths of the periodic lattice: ``(L, L)`` for the square
        lattice, ``(L, L, L)`` for the simple cubic one. Every side must be at
        least 2; the checkerboard kernels also need even sides.
    coupling, field
        Initial values of J and h.
    name
        Name of the spin site.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> model = IsingLattice((4, 4))
    >>> model.energy(model.init_params(), jnp.ones((1, 4, 4))).tolist()
    [-32.0]
    """

    def __init__(
        self,
        shape: int | Sequence[int],
        *,
        coupling: float = 1.0,
        field: float = 0.0,
        name: str = "s",
    ):
        shape = _check_shape(shape)
        init_params, site = _trace_params_and_site(shape, coupling, field, name)
        self.lattice_shape = shape
        self.ndim = len(shape)
        self.site_name = name
        super().__init__(self._joint_energy, init_params, [site])

    @property
    def num_spins(self) -> int:
        """Number N of lattice sites."""
        return int(np.prod(self.lattice_shape))

    @property
    def num_bonds(self) -> int:
        """Number of bonds, d·N on a d-dimensional torus."""
        return self.ndim * self.num_spins

    def _joint_energy(self, params: Params, x: Configuration) -> Array:
        s = x[self.site_name]
        magnetisation = jnp.sum(s, axis=tuple(range(-self.ndim, 0)))
        return -(
            params["coupling"] * bond_sum(s, self.ndim)
            + params["field"] * magnetisation
        )

    def local_field(self, params: Params, s: ArrayLike) -> Array:
        """Local field h_i = J Σ_{j∼i} s_j + h on every site.

        ``s`` has the lattice shape, optionally with leading batch axes.
        Flipping s_i changes the energy by 2 s_i h_i.
        """
        p = self.constrain(params)
        return p["coupling"] * neighbour_sum(jnp.asarray(s), self.ndim) + p["field"]


# -- exact results on the square lattice ----------------------------------------


def _log_cosh2(x):
    """log(2 cosh x), stable for large |x|."""
    a = np.abs(x)
    return a + np.log1p(np.exp(-2.0 * a))


def _log_sinh2(x):
    """log|2 sinh x|, accurate for small and large |x| (−inf at 0)."""
    a = np.abs(x)
    with np.errstate(divide="ignore"):
        small = np.log(2.0 * np.sinh(np.minimum(a, 1.0)))
    large = np.maximum(a, 1.0)
    return np.where(a < 1.0, small, large + np.log1p(-np.exp(-2.0 * large)))


def _product_and_derivative(logs, signs, dlogs, dsigns):
    """log|Π f_r|, sign, and the terms of d(Π f_r) = Σ_r f_r' Π_{s≠r} f_s.

    Products of all factors but one come from prefix and suffix sums of the
    logs, so a zero factor (log −inf) needs no division.
    """
    n = logs.size
    prefix = np.concatenate([[0.0], np.cumsum(logs)])
    suffix = np.concatenate([np.cumsum(logs[::-1])[::-1], [0.0]])
    others = prefix[:n] + suffix[1:]
    sign_prefix = np.concatenate([[1.0], np.cumprod(signs)])
    sign_suffix = np.concatenate([np.cumprod(signs[::-1])[::-1], [1.0]])
    other_signs = sign_prefix[:n] * sign_suffix[1:]
    return prefix[-1], sign_prefix[-1], dlogs + others, dsigns * other_signs


def _kaufman(rows: int, cols: int, k: float) -> tuple[float, float]:
    r"""Return log Z and d log Z / dK of the zero-field Ising model on a rows×cols torus.

    Kaufman (1949):

    .. math::

        Z = \tfrac12 (2 \sinh 2K)^{MN/2} (Z_1 + Z_2 + Z_3 + Z_4),

    with Z_{1,2} = Π_r 2 cosh, 2 sinh (M γ_{2r+1} / 2) and Z_{3,4} the same over
    γ_{2r}, r = 0, …, N − 1, where cosh γ_q = cosh 2K coth 2K − cos(π q / N)
    for q ≥ 1 and γ_0 = 2K + ln tanh K (negative above T_c, which makes Z_4
    negative). Everything is kept in log space with signs, in float64.
    """
    m, n = float(rows), cols
    q = np.arange(2 * n)
    c = np.cosh(2 * k) / np.tanh(2 * k)
    dc = 2 * np.cosh(2 * k) * (1 - 1 / np.sinh(2 * k) ** 2)
    gamma = np.arccosh(c - np.cos(np.pi * q / n))
    dgamma = np.empty_like(gamma)
    dgamma[1:] = dc / np.sinh(gamma[1:])
    gamma[0] = 2 * k + np.log(np.tanh(k))
    dgamma[0] = 2 + 2 / np.sinh(2 * k)

    results = []
    for g, dg in ((gamma[1::2], dgamma[1::2]), (gamma[0::2], dgamma[0::2])):
        x, dx = m * g / 2, m * dg / 2
        # At K_c, dγ_q/dK = 0 for q ≥ 1: log 0 = −inf is the right value.
        with np.errstate(divide="ignore"):
            log_dx = np.log(np.abs(dx))
        sign_dx = np.sign(dx)
        sign_x = np.where(x == 0, 1.0, np.sign(x))
        # Π 2 cosh x, whose factors have derivatives 2 sinh x · dx ...
        results.append(
            _product_and_derivative(
                _log_cosh2(x), np.ones_like(x), _log_sinh2(x) + log_dx, sign_x * sign_dx
            )
        )
        # ... and Π 2 sinh x, whose factors have derivatives 2 cosh x · dx.
        results.append(
            _product_and_derivative(
                _log_sinh2(x), sign_x, _log_cosh2(x) + log_dx, sign_dx
            )
        )
    logs, signs, dlogs, dsigns = zip(*results, strict=True)
    logs, signs = np.array(logs), np.array(signs)
    dlogs, dsigns = np.concatenate(dlogs), np.concatenate(dsigns)
    shift = np.max(logs)
    total = np.sum(signs * np.exp(logs - shift))
    derivative = np.sum(dsigns * np.exp(dlogs - shift))
    log_z = np.log(0.5) + m * n / 2 * np.log(2 * np.sinh(2 * k))
    log_z += shift + np.log(total)
    dlog_z = m * n / np.tanh(2 * k) + derivative / total
    return float(log_z), float(dlog_z)


def _check_torus(shape, inverse_temperature) -> tuple[int, int, float]:
    shape = _check_shape(shape)
    if len(shape) != 2:
        raise ValueError(
            f"the exact solution is for the two-dimensional torus; got `shape` {shape}."
        )
    beta = float(inverse_temperature)
    if not np.isfinite(beta) or beta <= 0:
        raise ValueError(
            f"`inverse_temperature` must be positive and finite; got {beta!r}."
        )
    return shape[0], shape[1], beta


def torus_log_partition(shape: Sequence[int], inverse_temperature: float) -> float:
    """Exact log Z of the zero-field Ising model (J = 1) on an M×N torus.

    Kaufman's closed form, evaluated in float64; it agrees with enumeration of
    the 4×4 torus to machine precision. Any side length of at least 2 works.

    Examples
    --------
    >>> round(torus_log_partition((4, 4), 0.3), 10)
    12.7855233257
    """
    rows, cols, beta = _check_torus(shape, inverse_temperature)
    return _kaufman(rows, cols, beta)[0]


def torus_energy_per_spin(shape: Sequence[int], inverse_temperature: float) -> float:
    """Exact ⟨E⟩/N of the zero-field Ising model (J = 1) on an M×N torus.

    Computed as −(1/N) ∂ log Z / ∂β from Kaufman's closed form, with the
    derivative taken analytically.

    Examples
    --------
    >>> round(torus_energy_per_spin((64, 64), 1 / 2.25), 8)
    -1.46385089
    """
    rows, cols, beta = _check_torus(shape, inverse_temperature)
    return -_kaufman(rows, cols, beta)[1] / (rows * cols)


def spontaneous_magnetisation(inverse_temperature: float) -> float:
    """Yang's spontaneous magnetisation of the infinite square lattice (J = 1).

    m = (1 − sinh(2β)^−4)^(1/8) for β > β_c and 0 otherwise. A finite torus
    has ⟨m⟩ = 0 and a ⟨|m|⟩ that approaches this value as L grows.

    Examples
    --------
    >>> round(spontaneous_magnetisation(0.5), 10)
    0.9113193779
    """
    beta = float(inverse_temperature)
    if beta <= CRITICAL_INVERSE_TEMPERATURE:
        return 0.0
    return float((1.0 - np.sinh(2.0 * beta) ** -4) ** 0.125)
