r"""Gaussian energy models: a multivariate Gaussian and the Gaussian–Bernoulli RBM.

The Gaussian energy of x ∈ ℝ^d with mean μ and precision P = L Lᵀ is

.. math::

    E_θ(x) = \tfrac{1}{2} (x − μ)ᵀ L Lᵀ (x − μ),

where L is lower triangular with a positive diagonal (NumPyro's
``lower_cholesky`` constraint), so P is positive definite for every
unconstrained θ. Its maximum-likelihood estimate is the sample mean and the
sample covariance with divisor N.

The Gaussian–Bernoulli RBM of Cho, Ilin & Raiko (2011), with visible units
v ∈ ℝ^n, hidden units h ∈ {0, 1}^m and visible variances σ_i² > 0, has

.. math::

    E_θ(v, h) = Σ_i \frac{(v_i − b_i)^2}{2σ_i^2} − c·h − Σ_{ij} \frac{v_i}{σ_i^2} W_{ij} h_j,

so p(h_j = 1 | v) = σ(c_j + Σ_i W_ij v_i / σ_i²) and p(v | h) is Gaussian with
mean b + W h and variances σ². The variances are a ``numpyro.param`` with a
positive constraint, so the optimiser works on log σ².
Summing out either layer gives

.. math::

    F_θ(v) = Σ_i \frac{(v_i − b_i)^2}{2σ_i^2}
        − Σ_j \mathrm{softplus}\Big(c_j + Σ_i \frac{W_{ij} v_i}{σ_i^2}\Big),

    F_θ(h) = −c·h − Σ_i \frac{(b_i + (W h)_i)^2 − b_i^2}{2σ_i^2} − \tfrac{1}{2} Σ_i \log(2π σ_i^2),

so p(v) is a mixture of 2^m Gaussians with weights ∝ exp(−F_θ(h)), and log Z is
a sum over the hidden states.

References
----------
Cho, K., Ilin, A. & Raiko, T. (2011). Improved learning of Gaussian–Bernoulli
restricted Boltzmann machines. ICANN 2011.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from numpyro_ebm.models.energy import (
    MAX_LATENT_CONFIGURATIONS,
    EnergyModel,
    _inspect_numpyro_model,
)
from numpyro_ebm.models.enumeration import decode_configurations
from numpyro_ebm.types import Array, ArrayLike, Configuration, Params, PRNGKey


def _check_positive_int(name: str, value: int) -> int:
    if not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")
    return int(value)


def _check_vector(name: str, value: ArrayLike | None, size: int) -> None:
    if value is not None and np.shape(value) != (size,):
        raise ValueError(f"`{name}` must have shape ({size},); got {np.shape(value)}.")


# -- multivariate Gaussian ----------------------------------------------------------


def gaussian_energy_model(
    dim: int, loc: ArrayLike | None = None, precision_tril: ArrayLike | None = None
) -> None:
    """NumPyro model of the Gaussian energy (site ``x``, parameters ``loc`` and L).

    ``x`` uses Lebesgue measure (``ImproperUniform`` on ``real_vector``), so the
    energy is exactly ½ (x − μ)ᵀ L Lᵀ (x − μ).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from numpyro_ebm.models import EnergyModel
    >>> model = EnergyModel.from_numpyro(gaussian_energy_model, 2)
    >>> model.energy(model.init_params(), jnp.ones((1, 2))).tolist()
    [1.0]
    """
    loc = numpyro.param(
        "loc", jnp.zeros(dim) if loc is None else jnp.asarray(loc, dtype=float)
    )
    init_tril = jnp.eye(dim) if precision_tril is None else precision_tril
    tril = numpyro.param(
        "precision_tril",
        jnp.asarray(init_tril, dtype=float),
        constraint=constraints.lower_cholesky,
    )
    x = numpyro.sample("x", dist.ImproperUniform(constraints.real_vector, (), (dim,)))
    residual = (x - loc) @ tril
    numpyro.factor("neg_energy", -0.5 * residual @ residual)


class GaussianEnergy(EnergyModel):
    """Gaussian energy ½ (x − μ)ᵀ P (x − μ) with P = L Lᵀ positive definite.

    Defined by the NumPyro model :func:`gaussian_energy_model` and extended
    with the closed-form moments and log partition function.

    Parameters
    ----------
    dim
        Dimension d of x.
    loc
        Initial mean μ; zeros by default.
    precision_tril
        Initial Cholesky factor L of the precision (lower triangular, positive
        diagonal); the identity by default.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> model = GaussianEnergy(2)
    >>> model.energy(model.init_params(), jnp.array([[1.0, 1.0]])).tolist()
    [1.0]
    >>> model.covariance(model.init_params()).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """

    def __init__(
        self,
        dim: int,
        *,
        loc: ArrayLike | None = None,
        precision_tril: ArrayLike | None = None,
    ):
        self.dim = _check_positive_int("dim", dim)
        _check_vector("loc", loc, self.dim)
        if precision_tril is not None:
            tril = np.asarray(precision_tril)
            if tril.shape != (self.dim, self.dim):
                raise ValueError(
                    f"`precision_tril` must have shape ({dim}, {dim}); got {tril.shape}."
                )
            if not (np.allclose(tril, np.tril(tril)) and np.all(np.diag(tril) > 0)):
                raise ValueError(
                    "`precision_tril` must be lower triangular with a positive "
                    "diagonal, such as np.linalg.cholesky(precision)."
                )
        init_params, transforms, sites = _inspect_numpyro_model(
            gaussian_energy_model,
            (self.dim, loc, precision_tril),
            {},
            jax.random.key(0),
        )
        super().__init__(self._joint_energy, init_params, sites, transforms=transforms)

    @staticmethod
    def _joint_energy(params: Params, x: Configuration) -> Array:
        residual = (x["x"] - params["loc"]) @ params["precision_tril"]
        return 0.5 * jnp.sum(residual**2, axis=-1)

    def mean(self, params: Params) -> Array:
        """Return the mean μ of the model."""
        return self.constrain(params)["loc"]

    def precision(self, params: Params) -> Array:
        """Return the precision matrix P = L Lᵀ."""
        tril = self.constrain(params)["precision_tril"]
        return tril @ tril.T

    def covariance(self, params: Params) -> Array:
        """Return the covariance matrix P⁻¹, from the Cholesky factor of P."""
        tril = self.constrain(params)["precision_tril"]
        inverse_tril = jax.scipy.linalg.solve_triangular(
            tril, jnp.eye(self.dim), lower=True
        )
        return inverse_tril.T @ inverse_tril

    def log_partition(self, params: Params) -> Array:
        """Return log Z = (d/2) log 2π − log det L."""
        tril = self.constrain(params)["precision_tril"]
        return 0.5 * self.dim * math.log(2 * math.pi) - jnp.sum(
            jnp.log(jnp.diagonal(tril))
        )


def gaussian_parameters(
    model: GaussianEnergy, mean: ArrayLike, covariance: ArrayLike
) -> dict[str, Array]:
    """Return unconstrained parameters of ``model`` with this mean and covariance.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> model = GaussianEnergy(2)
    >>> params = gaussian_parameters(model, jnp.ones(2), jnp.diag(jnp.array([4.0, 1.0])))
    >>> model.covariance(params).round(4).tolist()
    [[4.0, 0.0], [0.0, 1.0]]
    """
    precision = jnp.linalg.inv(jnp.asarray(covariance, dtype=float))
    tril = jnp.linalg.cholesky(precision)
    return model.unconstrain(
        {"loc": jnp.asarray(mean, dtype=float), "precision_tril": tril}
    )


# -- Gaussian–Bernoulli RBM ---------------------------------------------------------


def gaussian_bernoulli_rbm_model(
    num_visible: int,
    num_hidden: int,
    init_scale: float = 0.01,
    visible_bias: ArrayLike | None = None,
    visible_variance: ArrayLike | None = None,
) -> None:
    """NumPyro model of the Gaussian–Bernoulli RBM (sites ``v`` and ``h``).

    ``v`` uses Lebesgue measure and ``h`` the counting measure on {0, 1}, so
    the energy has no additive constant.

    Examples
    --------
    >>> from numpyro_ebm.models import EnergyModel
    >>> model = EnergyModel.from_numpyro(gaussian_bernoulli_rbm_model, 3, 2)
    >>> [site.name for site in model.sites]
    ['v', 'h']
    """
    weights = numpyro.param(
        "weights",
        lambda key: init_scale * jax.random.normal(key, (num_visible, num_hidden)),
    )
    init_bias = jnp.zeros(num_visible) if visible_bias is None else visible_bias
    vbias = numpyro.param("visible_bias", jnp.asarray(init_bias, dtype=float))
    hbias = numpyro.param("hidden_bias", jnp.zeros(num_hidden))
    init_variance = (
        jnp.ones(num_visible) if visible_variance is None else visible_variance
    )
    variance = numpyro.param(
        "visible_variance",
        jnp.asarray(init_variance, dtype=float),
        constraint=constraints.positive,
    )
    v = numpyro.sample(
        "v", dist.ImproperUniform(constraints.real_vector, (), (num_visible,))
    )
    h = numpyro.sample(
        "h", dist.ImproperUniform(constraints.boolean, (), (num_hidden,))
    )
    quadratic = jnp.sum((v - vbias) ** 2 / (2 * variance))
    numpyro.factor("neg_energy", -quadratic + h @ hbias + (v / variance) @ weights @ h)


class GaussianBernoulliRBM(EnergyModel):
    """Gaussian–Bernoulli RBM with visible site ``v`` (real) and hidden site ``h``.

    Defined by the NumPyro model :func:`gaussian_bernoulli_rbm_model` and
    extended with the closed-form conditionals, free energies and log
    partition function. Its block Gibbs kernel is
    :func:`~numpyro_ebm.kernels.mixed.gaussian_block_gibbs`; the generic
    :func:`~numpyro_ebm.kernels.mixed.mixed_gibbs` also samples it.

    Parameters
    ----------
    num_visible, num_hidden
        Numbers of visible and hidden units.
    init_scale
        Standard deviation of the initial weights.
    visible_bias
        Initial visible biases b, for example the data mean; zeros by default.
    visible_variance
        Initial variances σ², for example the data variance; ones by default.
    rng_key
        Key for the initial weights.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> rbm = GaussianBernoulliRBM(3, 2)
    >>> rbm.free_energy(rbm.init_params(), jnp.zeros((1, 3))).shape
    (1,)
    """

    def __init__(
        self,
        num_visible: int,
        num_hidden: int,
        *,
        init_scale: float = 0.01,
        visible_bias: ArrayLike | None = None,
        visible_variance: ArrayLike | None = None,
        rng_key: PRNGKey | None = None,
    ):
        self.num_visible = _check_positive_int("num_visible", num_visible)
        self.num_hidden = _check_positive_int("num_hidden", num_hidden)
        _check_vector("visible_bias", visible_bias, self.num_visible)
        _check_vector("visible_variance", visible_variance, self.num_visible)
        if visible_variance is not None and not np.all(
            np.asarray(visible_variance) > 0
        ):
            raise ValueError(
                f"`visible_variance` must be positive; got {visible_variance!r}."
            )
        args = (
            self.num_visible,
            self.num_hidden,
            init_scale,
            visible_bias,
            visible_variance,
        )
        rng_key = jax.random.key(0) if rng_key is None else rng_key
        init_params, transforms, sites = _inspect_numpyro_model(
            gaussian_bernoulli_rbm_model, args, {}, rng_key
        )
        super().__init__(
            self._joint_energy,
            init_params,
            sites,
            visible=["v"],
            transforms=transforms,
        )

    @staticmethod
    def _joint_energy(params: Params, x: Configuration) -> Array:
        v, h = x["v"], x["h"]
        variance = params["visible_variance"]
        quadratic = jnp.sum((v - params["visible_bias"]) ** 2 / (2 * variance), -1)
        interaction = jnp.einsum("bi,ij,bj->b", v / variance, params["weights"], h)
        return quadratic - h @ params["hidden_bias"] - interaction

    # -- conditionals --------------------------------------------------------------

    def hidden_logits(self, params: Params, v: Array) -> Array:
        """Return the logits of p(h_j = 1 | v) for a batch of visible configurations."""
        p = self.constrain(params)
        return p["hidden_bias"] + (v / p["visible_variance"]) @ p["weights"]

    def hidden_probs(self, params: Params, v: Array) -> Array:
        """Return the probabilities p(h_j = 1 | v)."""
        return jax.nn.sigmoid(self.hidden_logits(params, v))

    def visible_mean(self, params: Params, h: Array) -> Array:
        """Return the mean b + W h of p(v | h) for a batch of hidden states."""
        p = self.constrain(params)
        return p["visible_bias"] + h @ p["weights"].T

    def visible_variance(self, params: Params) -> Array:
        """Return the variances σ² of p(v | h), the same for every h."""
        return self.constrain(params)["visible_variance"]

    # -- free energies and normaliser ------------------------------------------------

    def free_energy(self, params: Params, v: Array) -> Array:
        """Return F(v) = −log Σ_h exp(−E(v, h)) for a batch of visible states."""
        p = self.constrain(params)
        variance = p["visible_variance"]
        quadratic = jnp.sum((v - p["visible_bias"]) ** 2 / (2 * variance), -1)
        logits = p["hidden_bias"] + (v / variance) @ p["weights"]
        return quadratic - jnp.sum(jax.nn.softplus(logits), axis=-1)

    def hidden_free_energy(self, params: Params, h: Array) -> Array:
        """Return F(h) = −log ∫ exp(−E(v, h)) dv for a batch of hidden states."""
        p = self.constrain(params)
        variance, bias = p["visible_variance"], p["visible_bias"]
        mean = bias + h @ p["weights"].T
        shift = jnp.sum((mean**2 - bias**2) / (2 * variance), axis=-1)
        log_normaliser = 0.5 * jnp.sum(jnp.log(2 * math.pi * variance))
        return -(h @ p["hidden_bias"]) - shift - log_normaliser

    def marginal_energy(self, params: Params, x: Configuration) -> Array:
        """Return the energy with the missing layer summed out in closed form."""
        if "v" in x and "h" in x:
            return self.joint_energy(params, x)
        if "v" in x:
            return self.free_energy(params, x["v"])
        if "h" in x:
            return self.hidden_free_energy(params, x["h"])
        raise ValueError(f"`x` must contain site 'v', 'h' or both; got {sorted(x)}.")

    def log_partition(self, params: Params) -> Array:
        """Return log Z = log Σ_h exp(−F(h)), enumerating the 2^m hidden states.

        Raises
        ------
        ValueError
            If 2^m exceeds ``MAX_LATENT_CONFIGURATIONS`` (2^16).
        """
        count = 2**self.num_hidden
        if count > MAX_LATENT_CONFIGURATIONS:
            raise ValueError(
                f"log_partition enumerates 2^{self.num_hidden} hidden states, above "
                f"MAX_LATENT_CONFIGURATIONS = {MAX_LATENT_CONFIGURATIONS}; use an "
                "estimator such as annealed importance sampling instead."
            )
        hidden = decode_configurations(self.latent_sites, jnp.arange(count))["h"]
        return jax.nn.logsumexp(-self.hidden_free_energy(params, hidden))

    def sample(self, rng_key: PRNGKey, params: Params, num_samples: int) -> Array:
        """Draw exact samples of v: h from p(h) by enumeration, then v | h.

        Raises
        ------
        ValueError
            If 2^m exceeds ``MAX_LATENT_CONFIGURATIONS`` (2^16).

        Examples
        --------
        >>> import jax
        >>> rbm = GaussianBernoulliRBM(3, 2)
        >>> rbm.sample(jax.random.key(0), rbm.init_params(), 5).shape
        (5, 3)
        """
        log_z = self.log_partition(params)
        hidden = decode_configurations(
            self.latent_sites, jnp.arange(2**self.num_hidden)
        )
        log_probs = -self.hidden_free_energy(params, hidden["h"]) - log_z
        key_hidden, key_visible = jax.random.split(rng_key)
        index = jax.random.categorical(key_hidden, log_probs, shape=(num_samples,))
        mean = self.visible_mean(params, hidden["h"][index])
        noise = jax.random.normal(key_visible, mean.shape)
        return mean + jnp.sqrt(self.visible_variance(params)) * noise
