"""Bernoulli–Bernoulli restricted Boltzmann machine.

The energy of visible units v ∈ {0, 1}^n and hidden units h ∈ {0, 1}^m is

.. math::

    E_θ(v, h) = −b·v − c·h − vᵀ W h,

so both conditionals factorise, p(h_j = 1 | v) = σ(c_j + (vᵀW)_j) and
p(v_i = 1 | h) = σ(b_i + (W h)_i), and either layer sums out in closed form:

.. math::

    F_θ(v) = −b·v − Σ_j softplus(c_j + (vᵀW)_j).

References
----------
Smolensky, P. (1986). Information processing in dynamical systems: foundations
of harmony theory. Hinton, G. E. (2002). Training products of experts by
minimizing contrastive divergence. Neural Computation 14(8).
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints

from numpyro_ebm.models.energy import EnergyModel, _inspect_numpyro_model
from numpyro_ebm.types import Array, ArrayLike, Configuration, Params, PRNGKey


def bernoulli_rbm_model(
    num_visible: int,
    num_hidden: int,
    init_scale: float = 0.01,
    visible_bias: ArrayLike | None = None,
) -> None:
    """NumPyro model of the Bernoulli–Bernoulli RBM (sites ``v`` and ``h``).

    The sites use the counting measure on {0, 1} (``ImproperUniform`` with
    boolean support), so the energy has no additive constant and log Z follows
    the usual convention.
    """
    weights = numpyro.param(
        "weights",
        lambda key: init_scale * jax.random.normal(key, (num_visible, num_hidden)),
    )
    init_bias = jnp.zeros(num_visible) if visible_bias is None else visible_bias
    vbias = numpyro.param("visible_bias", jnp.asarray(init_bias, dtype=float))
    hbias = numpyro.param("hidden_bias", jnp.zeros(num_hidden))
    v = numpyro.sample(
        "v", dist.ImproperUniform(constraints.boolean, (), (num_visible,))
    )
    h = numpyro.sample(
        "h", dist.ImproperUniform(constraints.boolean, (), (num_hidden,))
    )
    numpyro.factor("neg_energy", v @ vbias + h @ hbias + v @ weights @ h)


class BernoulliRBM(EnergyModel):
    """Bernoulli–Bernoulli RBM with visible site ``v`` and hidden site ``h``.

    Defined by the NumPyro model :func:`bernoulli_rbm_model`, like any user
    model, and extended with the closed-form conditionals and free energies
    that block Gibbs sampling and exact enumeration use.

    Parameters
    ----------
    num_visible, num_hidden
        Numbers of visible and hidden units.
    init_scale
        Standard deviation of the initial weights (0.01, as recommended by
        Hinton, "A practical guide to training RBMs", 2010).
    visible_bias
        Initial visible biases; :func:`numpyro_ebm.models.rbm.base_rate_bias`
        of the training data is the usual choice. Zeros by default.
    rng_key
        Key for the initial weights; ``jax.random.key(0)`` by default, so
        every RBM built without a key starts from the same weights.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> rbm = BernoulliRBM(4, 2)
    >>> rbm.free_energy(rbm.init_params(), jnp.ones((1, 4))).shape
    (1,)
    """

    def __init__(
        self,
        num_visible: int,
        num_hidden: int,
        *,
        init_scale: float = 0.01,
        visible_bias: ArrayLike | None = None,
        rng_key: PRNGKey | None = None,
    ):
        for arg, value in (("num_visible", num_visible), ("num_hidden", num_hidden)):
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"`{arg}` must be a positive integer; got {value!r}.")
        if not (np.isfinite(init_scale) and init_scale >= 0):
            raise ValueError(
                f"`init_scale` must be finite and non-negative; got {init_scale!r}."
            )
        if visible_bias is not None and not np.all(np.isfinite(visible_bias)):
            raise ValueError("`visible_bias` must be finite; it contains NaN or inf.")
        if visible_bias is not None and np.shape(visible_bias) != (num_visible,):
            raise ValueError(
                f"`visible_bias` must have shape ({num_visible},); "
                f"got {np.shape(visible_bias)}."
            )
        self.num_visible, self.num_hidden = int(num_visible), int(num_hidden)
        args = (self.num_visible, self.num_hidden, init_scale, visible_bias)
        rng_key = jax.random.key(0) if rng_key is None else rng_key
        init_params, transforms, sites = _inspect_numpyro_model(
            bernoulli_rbm_model, args, {}, rng_key
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
        interaction = jnp.einsum("bi,ij,bj->b", v, params["weights"], h)
        return -(v @ params["visible_bias"] + h @ params["hidden_bias"] + interaction)

    # -- conditionals ------------------------------------------------------------

    def hidden_logits(self, params: Params, v: Array) -> Array:
        """Logits of p(h_j = 1 | v) for a batch of visible configurations."""
        p = self.constrain(params)
        return p["hidden_bias"] + v @ p["weights"]

    def visible_logits(self, params: Params, h: Array) -> Array:
        """Logits of p(v_i = 1 | h) for a batch of hidden configurations."""
        p = self.constrain(params)
        return p["visible_bias"] + h @ p["weights"].T

    def hidden_probs(self, params: Params, v: Array) -> Array:
        """Probabilities p(h_j = 1 | v)."""
        return jax.nn.sigmoid(self.hidden_logits(params, v))

    def visible_probs(self, params: Params, h: Array) -> Array:
        """Probabilities p(v_i = 1 | h)."""
        return jax.nn.sigmoid(self.visible_logits(params, h))

    # -- free energies -----------------------------------------------------------

    def free_energy(self, params: Params, v: Array) -> Array:
        """Free energy F(v) = −log Σ_h exp(−E(v, h)) of a batch of visible states."""
        p = self.constrain(params)
        logits = p["hidden_bias"] + v @ p["weights"]
        return -(v @ p["visible_bias"]) - jnp.sum(jax.nn.softplus(logits), axis=-1)

    def hidden_free_energy(self, params: Params, h: Array) -> Array:
        """Free energy −log Σ_v exp(−E(v, h)) of a batch of hidden states."""
        p = self.constrain(params)
        logits = p["visible_bias"] + h @ p["weights"].T
        return -(h @ p["hidden_bias"]) - jnp.sum(jax.nn.softplus(logits), axis=-1)

    def marginal_energy(self, params: Params, x: Configuration) -> Array:
        """Energy with the missing layer summed out in closed form."""
        if "v" in x and "h" in x:
            return self.joint_energy(params, x)
        if "v" in x:
            return self.free_energy(params, x["v"])
        if "h" in x:
            return self.hidden_free_energy(params, x["h"])
        raise ValueError(f"`x` must contain site 'v', 'h' or both; got {sorted(x)}.")


def base_rate_bias(data: ArrayLike, pseudocount: float = 1.0) -> Array:
    """Visible biases log(p / (1 − p)) matching the data marginals p.

    The pseudocount keeps the biases finite for pixels that are always on or
    always off: p = (Σ x + pseudocount) / (N + 2 pseudocount).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> base_rate_bias(jnp.array([[1.0, 0.0], [1.0, 1.0]]), pseudocount=0.0)[1]
    Array(0., dtype=float32)
    """
    data = jnp.asarray(data, dtype=float)
    if data.ndim != 2 or data.shape[0] == 0:
        raise ValueError(f"`data` must have shape (batch, features); got {data.shape}.")
    counts = data.sum(axis=0)
    p = (counts + pseudocount) / (data.shape[0] + 2.0 * pseudocount)
    p = jnp.clip(p, 1e-6, 1.0 - 1e-6)
    return jnp.log(p) - jnp.log1p(-p)
