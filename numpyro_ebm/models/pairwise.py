r"""Fully visible pairwise models: the spin glass and the Potts model.

The spin glass, or fully visible Boltzmann machine on spins s ∈ {−1, 1}^N, is
the model of the inverse Ising problem:

.. math::

    E_θ(s) = −\tfrac12 sᵀ J s − h·s.

The Potts model over states σ ∈ {0, …, q − 1}^N is the model that direct
coupling analysis fits to protein and RNA alignments (bmDCA):

.. math::

    E_θ(σ) = −Σ_i h_i(σ_i) − Σ_{i<j} J_{ij}(σ_i, σ_j).

Both are parametrised so that the couplings J are symmetric with zero diagonal
(blocks) whatever values an optimiser gives the raw parameter W: the model
uses J = (W + Wᵀ)/2 with the diagonal masked. Both expose the local fields that
single-site kernels need,

.. math::

    L_i(s) = Σ_j J_{ij} s_j + h_i, \qquad
    F_i(σ)_a = h_i(a) + Σ_j J_{ij}(a, σ_j),

so that setting one element changes the energy by −(s_i' − s_i) L_i(s) for
spins and by −(F_i(σ)_{a'} − F_i(σ)_a) for Potts states.

References
----------
Ackley, D. H., Hinton, G. E. and Sejnowski, T. J. (1985). A learning algorithm
for Boltzmann machines. Cognitive Science 9(1). Figliuzzi, M., Barrat-Charlaix,
P. and Weigt, M. (2018). How pairwise coevolutionary models capture the
collective residue variability in proteins. Molecular Biology and Evolution
35(4).
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from numpyro_ebm.models.constraints import spin
from numpyro_ebm.models.energy import EnergyModel, _inspect_numpyro_model
from numpyro_ebm.types import Array, ArrayLike, Configuration, Params, PRNGKey


def _inspect_spin_model(model, model_args, rng_key):
    """Return the params, transforms and sites of ``model``."""
    return _inspect_numpyro_model(model, model_args, {}, rng_key)


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    if value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value}.")
    return int(value)


def _check_initial(name: str, value, shape: tuple[int, ...]) -> Array:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        raise ValueError(f"`{name}` must have shape {shape}; got {array.shape}.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` contains non-finite values.")
    return jnp.asarray(array, dtype=float)


# -- spin glass ----------------------------------------------------------------


def symmetric_couplings(raw: Array) -> Array:
    """Return J = (W + Wᵀ)/2 with zero diagonal from the raw parameter W.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> symmetric_couplings(jnp.array([[5.0, 2.0], [0.0, 5.0]])).tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    num_spins = raw.shape[-1]
    off_diagonal = 1.0 - jnp.eye(num_spins, dtype=raw.dtype)
    return 0.5 * (raw + raw.T) * off_diagonal


def spin_glass_model(
    num_spins: int,
    couplings: ArrayLike | None = None,
    fields: ArrayLike | None = None,
) -> None:
    """NumPyro model of the spin glass over ±1 spins (site ``s``).

    The parameters are ``couplings`` (the raw N × N matrix W, zeros by default)
    and ``fields`` (h, zeros by default). The site uses the counting measure on
    {−1, 1}, so the energy has no additive constant.
    """
    init_couplings = (
        jnp.zeros((num_spins, num_spins)) if couplings is None else couplings
    )
    init_fields = jnp.zeros(num_spins) if fields is None else fields
    raw = numpyro.param("couplings", jnp.asarray(init_couplings, dtype=float))
    h = numpyro.param("fields", jnp.asarray(init_fields, dtype=float))
    s = numpyro.sample("s", dist.ImproperUniform(spin, (), (num_spins,)))
    numpyro.factor("neg_energy", 0.5 * s @ symmetric_couplings(raw) @ s + h @ s)


class SpinGlass(EnergyModel):
    r"""Spin glass (fully visible Boltzmann machine) on spins ``s`` ∈ {−1, 1}^N.

    .. math::

        E_θ(s) = −\tfrac12 sᵀ J s − h·s, \qquad J = \tfrac12 (W + Wᵀ) ⊙ (1 − I).

    Defined by the NumPyro model :func:`spin_glass_model` and extended with the
    local fields and flip energies that the local-field Gibbs kernel uses.

    Parameters
    ----------
    num_spins
        Number of spins N.
    couplings
        Initial raw coupling matrix W of shape (N, N); only its symmetric part
        off the diagonal enters the energy. Zeros by default.
    fields
        Initial fields h of shape (N,). Zeros by default.
    rng_key
        Key for tracing the model (the default initial values are not random).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> model = SpinGlass(3, couplings=jnp.ones((3, 3)))
    >>> model.energy(model.init_params(), jnp.ones((1, 3))).tolist()
    [-3.0]
    """

    def __init__(
        self,
        num_spins: int,
        *,
        couplings: ArrayLike | None = None,
        fields: ArrayLike | None = None,
        rng_key: PRNGKey | None = None,
    ):
        self.num_spins = _check_count("num_spins", num_spins, 1)
        n = self.num_spins
        if couplings is not None:
            couplings = _check_initial("couplings", couplings, (n, n))
        if fields is not None:
            fields = _check_initial("fields", fields, (n,))
        rng_key = jax.random.key(0) if rng_key is None else rng_key
        init_params, transforms, sites = _inspect_spin_model(
            spin_glass_model, (n, couplings, fields), rng_key
        )
        super().__init__(self._joint_energy, init_params, sites, transforms=transforms)

    @staticmethod
    def _joint_energy(params: Params, x: Configuration) -> Array:
        s = x["s"]
        couplings = symmetric_couplings(params["couplings"])
        return -(
            0.5 * jnp.einsum("bi,ij,bj->b", s, couplings, s) + s @ params["fields"]
        )

    def coupling_matrix(self, params: Params) -> Array:
        """Symmetric coupling matrix J with zero diagonal, of shape (N, N)."""
        return symmetric_couplings(self.constrain(params)["couplings"])

    def local_fields(self, params: Params, s: Array) -> Array:
        """Local fields L = J s + h of a batch of spin configurations, shape (batch, N).

        Examples
        --------
        >>> import jax.numpy as jnp
        >>> model = SpinGlass(2, couplings=jnp.ones((2, 2)), fields=jnp.ones(2))
        >>> model.local_fields(model.init_params(), jnp.array([[1.0, -1.0]])).tolist()
        [[0.0, 2.0]]
        """
        constrained = self.constrain(params)
        return s @ symmetric_couplings(constrained["couplings"]) + constrained["fields"]

    def flip_energy_change(self, params: Params, s: Array) -> Array:
        """Energy change ΔE_i = 2 s_i L_i(s) of flipping each spin, shape (batch, N).

        Examples
        --------
        >>> import jax.numpy as jnp
        >>> model = SpinGlass(2, fields=jnp.array([1.0, 0.0]))
        >>> model.flip_energy_change(model.init_params(), jnp.ones((1, 2))).tolist()
        [[2.0, 0.0]]
        """
        return 2.0 * s * self.local_fields(params, s)


# -- Potts model ---------------------------------------------------------------


def symmetric_potts_couplings(raw: Array) -> Array:
    """Return J with J[i, a, j, b] = J[j, b, i, a] and zero blocks J[i, :, i, :].

    The raw parameter W of shape (N, q, N, q) maps to
    J = (W + W.transpose(2, 3, 0, 1)) / 2 with its diagonal blocks masked.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> coupling = symmetric_potts_couplings(jnp.ones((2, 3, 2, 3)))
    >>> coupling[0, :, 0].sum().item(), coupling[0, 1, 1, 2].item()
    (0.0, 1.0)
    """
    num_sites = raw.shape[0]
    mask = 1.0 - jnp.eye(num_sites, dtype=raw.dtype)[:, None, :, None]
    return 0.5 * (raw + raw.transpose(2, 3, 0, 1)) * mask


def _potts_local_fields(fields: Array, couplings: Array, onehot: Array) -> Array:
    """F[b, i, a] = h[i, a] + Σ_{j,c} J[i, a, j, c] onehot[b, j, c], one matmul.

    A one-hot product is used instead of a gather over σ_j because, batched, it
    needs O(batch · N · q) memory rather than O(batch · N² · q).
    """
    num_sites, num_states = fields.shape
    size = num_sites * num_states
    flat = onehot.reshape(onehot.shape[:-2] + (size,))
    pair = flat @ couplings.reshape(size, size)
    return fields + pair.reshape(onehot.shape)


def _potts_energy(fields: Array, couplings: Array, onehot: Array) -> Array:
    """E = −Σ_i h_i(σ_i) − ½ Σ_{i≠j} J_ij(σ_i, σ_j) of one-hot states (…, N, q)."""
    local = _potts_local_fields(fields, couplings, onehot)
    # Σ_i F_i(σ_i) counts each pair twice and each field once, so the mean of
    # the field term and Σ_i F_i(σ_i) is Σ h + ½ Σ_{i≠j} J.
    field_term = jnp.sum(onehot * fields, axis=(-2, -1))
    local_term = jnp.sum(onehot * local, axis=(-2, -1))
    return -0.5 * (field_term + local_term)


def potts_model(
    num_sites: int,
    num_states: int,
    couplings: ArrayLike | None = None,
    fields: ArrayLike | None = None,
) -> None:
    """NumPyro model of the q-state Potts model (site ``x``, int32 states 0..q−1).

    The parameters are ``couplings`` (the raw (N, q, N, q) array W, zeros by
    default) and ``fields`` (h of shape (N, q), zeros by default).
    """
    shape = (num_sites, num_states)
    init_couplings = jnp.zeros(shape + shape) if couplings is None else couplings
    init_fields = jnp.zeros(shape) if fields is None else fields
    raw = numpyro.param("couplings", jnp.asarray(init_couplings, dtype=float))
    h = numpyro.param("fields", jnp.asarray(init_fields, dtype=float))
    support = constraints.integer_interval(0, num_states - 1)
    x = numpyro.sample("x", dist.ImproperUniform(support, (), (num_sites,)))
    # Tracing substitutes float placeholders for the states, so cast first.
    onehot = jax.nn.one_hot(jnp.asarray(x, jnp.int32), num_states)
    numpyro.factor(
        "neg_energy", -_potts_energy(h, symmetric_potts_couplings(raw), onehot)
    )


class Potts(EnergyModel):
    r"""Potts model with q states per site and general pairwise couplings.

    .. math::

        E_θ(σ) = −Σ_i h_i(σ_i) − Σ_{i<j} J_{ij}(σ_i, σ_j),

    with site ``x`` holding int32 states 0, …, q − 1, parameters ``fields`` h of
    shape (N, q) and ``couplings`` W of shape (N, q, N, q), and
    J = (W + W.transpose(2, 3, 0, 1)) / 2 with zero diagonal blocks. The
    parameters have the usual gauge freedom of the Potts model, which an L2
    penalty on both fixes.

    Parameters
    ----------
    num_sites
        Number of sites N (alignment columns for DCA).
    num_states
        Number of states q per site (21 for amino acids with the gap).
    couplings
        Initial raw couplings W of shape (N, q, N, q). Zeros by default.
    fields
        Initial fields h of shape (N, q). Zeros by default.
    rng_key
        Key for tracing the model (the default initial values are not random).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> fields = jnp.zeros((4, 3)).at[:, 0].set(1.0)
    >>> model = Potts(4, 3, fields=fields)
    >>> x = jnp.array([[0, 1, 2, 0]])
    >>> model.energy(model.init_params(), x).tolist()
    [-2.0]
    >>> model.local_fields(model.init_params(), x).shape
    (1, 4, 3)
    """

    def __init__(
        self,
        num_sites: int,
        num_states: int,
        *,
        couplings: ArrayLike | None = None,
        fields: ArrayLike | None = None,
        rng_key: PRNGKey | None = None,
    ):
        self.num_sites = _check_count("num_sites", num_sites, 1)
        self.num_states = _check_count("num_states", num_states, 2)
        shape = (self.num_sites, self.num_states)
        if couplings is not None:
            couplings = _check_initial("couplings", couplings, shape + shape)
        if fields is not None:
            fields = _check_initial("fields", fields, shape)
        rng_key = jax.random.key(0) if rng_key is None else rng_key
        args = (self.num_sites, self.num_states, couplings, fields)
        init_params, transforms, sites = _inspect_numpyro_model(
            potts_model, args, {}, rng_key
        )
        super().__init__(self._joint_energy, init_params, sites, transforms=transforms)

    def _joint_energy(self, params: Params, x: Configuration) -> Array:
        onehot = jax.nn.one_hot(x["x"], self.num_states)
        couplings = symmetric_potts_couplings(params["couplings"])
        return _potts_energy(params["fields"], couplings, onehot)

    def coupling_matrix(self, params: Params) -> Array:
        """Couplings J of shape (N, q, N, q), symmetric with zero diagonal blocks."""
        return symmetric_potts_couplings(self.constrain(params)["couplings"])

    def local_fields(self, params: Params, x: Array) -> Array:
        """Local fields F_i(x)_a = h_i(a) + Σ_j J_ij(a, x_j), shape (batch, N, q).

        ``x`` is a batch of int32 states of shape (batch, N).
        """
        constrained = self.constrain(params)
        couplings = symmetric_potts_couplings(constrained["couplings"])
        onehot = jax.nn.one_hot(x, self.num_states)
        return _potts_local_fields(constrained["fields"], couplings, onehot)

    def mean_energy(self, params: Params, single: Array, pair: Array) -> Array:
        r"""Mean energy under any distribution with the given one- and two-site frequencies.

        The energy is linear in the one-hot statistics, so

        .. math::

            ⟨E_θ⟩ = −Σ_i Σ_a h_i(a) f_i(a)
                    − \tfrac12 Σ_{i≠j} Σ_{a,b} J_{ij}(a, b) f_{ij}(a, b),

        for ``single`` f_i(a) of shape (N, q) and ``pair`` f_ij(a, b) of shape
        (N, q, N, q); the diagonal blocks of ``pair`` are not used. This is the
        data term of a full-batch fit at a cost of O((N q)²), whatever the
        number of sequences.

        Examples
        --------
        >>> import jax.numpy as jnp
        >>> model = Potts(2, 2, fields=jnp.array([[1.0, 0.0], [0.0, 2.0]]))
        >>> single = jnp.full((2, 2), 0.5)
        >>> float(model.mean_energy(model.init_params(), single, jnp.zeros((2, 2, 2, 2))))
        -1.5
        """
        shape = (self.num_sites, self.num_states)
        for name, value, expected in (
            ("single", single, shape),
            ("pair", pair, shape + shape),
        ):
            if jnp.shape(value) != expected:
                raise ValueError(
                    f"`{name}` must have shape {expected} for this model; got "
                    f"{jnp.shape(value)}."
                )
        constrained = self.constrain(params)
        couplings = symmetric_potts_couplings(constrained["couplings"])
        return -jnp.sum(constrained["fields"] * single) - 0.5 * jnp.sum(
            couplings * pair
        )

    def onehot_energy(self, params: Params, x: Configuration) -> Array:
        """Energy of a batch of one-hot encoded states, ``x["x"]`` of shape (batch, N, q).

        The energy is a polynomial in the one-hot entries, so it is defined
        (and differentiable) for real-valued relaxations too; at one-hot
        points it equals :meth:`energy`. Gibbs-with-Gradients proposals use its
        gradient.
        """
        constrained = self.constrain(params)
        couplings = symmetric_potts_couplings(constrained["couplings"])
        return _potts_energy(constrained["fields"], couplings, x["x"])
