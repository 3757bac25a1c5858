r"""Gibbs-with-Gradients: Metropolis–Hastings with gradient-informed single-element proposals.

For a discrete target p(x) ∝ exp(f(x)), f = −β E, the first-order Taylor
expansion of f around x estimates the change of f caused by moving one element
of x to another value. For a two-valued element x_i ∈ {d_0, d_1} (binary units
or spins) moving to its other value x̄_i, and for a categorical element σ_i
moving to the value a (with f differentiated with respect to the one-hot
encoding o of σ),

.. math::

    \tilde d(x)_i = (x̄_i − x_i) \, ∂_{x_i} f(x), \qquad
    \tilde d(σ)_{i,a} = ∂_{o_{i,a}} f(o) − ∂_{o_{i,σ_i}} f(o).

One proposal picks a single move with probability q(m | x) ∝ exp(d̃(x)_m / 2),
the locally balanced weight √(p(x′)/p(x)) in its first-order form, excluding
moves to the current value, and is accepted with probability

.. math::

    \min\Big(1, \exp\big(f(x′) − f(x)\big) \frac{q(m′ \mid x′)}{q(m \mid x)}\Big),

where m′ is the move back from x′ to x. The acceptance uses the exact energy
``model.energy``, so the chain targets exp(−β E) exactly. The gradient only
shapes the proposal, and a poor linearisation lowers the acceptance rate but
does not bias the samples. Each proposal costs one energy evaluation and one
gradient, whatever the number of elements.

Binary and spin sites are differentiated as the float values the energy
receives. Categorical sites need an energy of one-hot encodings,
``onehot_energy(params, x)`` with each categorical site of ``x`` replaced by a
float array of shape (batch, *site.shape, q); it is taken from the model (as
:meth:`~numpyro_ebm.models.pairwise.Potts.onehot_energy`) or passed as an
argument. For models with latent sites the target is the visible marginal, so
``model.energy`` is the free energy and is differentiated as such.

References
----------
Grathwohl, W., Swersky, K., Hashemi, M., Duvenaud, D. and Maddison, C. J.
(2021). Oops I took a gradient: scalable sampling for discrete distributions.
Proceedings of the 38th International Conference on Machine Learning (ICML).
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_ebm.kernels.base import EnergyMCMCKernel, Kernel
from numpyro_ebm.models.energy import EnergyModel
from numpyro_ebm.models.sites import Site
from numpyro_ebm.types import Array, Configuration, Params, PRNGKey

# q(m | x) ∝ exp(d̃_m / 2): the first-order estimate of √(p(x′)/p(x)), the
# proposal weight of Grathwohl et al. (2021).
PROPOSAL_SCALE = 0.5


class GibbsWithGradientsState(NamedTuple):
    """State of one Gibbs-with-Gradients chain.

    Attributes
    ----------
    position
        Visible configuration, keyed by site name.
    """

    position: dict[str, Array]


class GibbsWithGradientsInfo(NamedTuple):
    """Per-step diagnostics of Gibbs-with-Gradients.

    Attributes
    ----------
    acceptance_rate
        Mean Metropolis–Hastings acceptance probability over the step's
        proposals.
    num_accepted
        Number of the step's proposals that were accepted.
    """

    acceptance_rate: Array
    num_accepted: Array


def _check_sites(model: EnergyModel) -> tuple[Site, ...]:
    for site in model.visible_sites:
        two_valued = site.is_discrete and len(site.domain) == 2
        if not (site.is_categorical or two_valued):
            raise TypeError(
                "Gibbs-with-Gradients needs visible sites with two values (binary "
                "or spin) or categorical values 0, ..., q - 1; site "
                f"`{site.name}` has domain {site.domain}."
            )
    return model.visible_sites


def _check_num_proposals(num_proposals: int) -> int:
    if isinstance(num_proposals, bool) or not isinstance(
        num_proposals, int | np.integer
    ):
        raise ValueError(
            f"`num_proposals` must be a positive integer; got {num_proposals!r}."
        )
    if num_proposals < 1:
        raise ValueError(
            f"`num_proposals` must be a positive integer; got {num_proposals}."
        )
    return int(num_proposals)


def _resolve_onehot_energy(model, sites, onehot_energy):
    if not any(site.is_categorical for site in sites):
        return None
    if onehot_energy is None:
        onehot_energy = getattr(model, "onehot_energy", None)
    if not callable(onehot_energy):
        names = [site.name for site in sites if site.is_categorical]
        raise TypeError(
            f"Gibbs-with-Gradients differentiates categorical sites {names} "
            "through their one-hot encoding, but "
            f"{type(model).__name__} has no `onehot_energy` method; pass "
            "`onehot_energy=fn` with fn(params, x) -> energies, where x holds "
            "each categorical site one-hot encoded with shape (batch, *shape, q)."
        )
    return onehot_energy


def gibbs_with_gradients(
    model: EnergyModel,
    inverse_temperature: float = 1.0,
    *,
    num_proposals: int = 1,
    onehot_energy: Callable[[Params, Configuration], Array] | None = None,
) -> Kernel:
    """Build the Gibbs-with-Gradients kernel of a model with discrete visible sites.

    Parameters
    ----------
    model
        Any energy model whose visible sites are two-valued (binary or spin)
        or categorical. Latent sites are summed out by ``model.energy``.
    inverse_temperature
        β: the kernel samples from p(x) ∝ exp(−β E(x)). May be a traced scalar.
    num_proposals
        Number of Metropolis–Hastings proposals per step, each changing at
        most one element.
    onehot_energy
        ``onehot_energy(params, x) -> energies`` for a batch ``x`` with the
        categorical sites one-hot encoded; it must equal ``model.energy`` at
        one-hot points. Defaults to ``model.onehot_energy``; only needed when a
        visible site is categorical.

    Returns
    -------
    Kernel
        Pure ``init`` and ``step`` for one chain.

    Raises
    ------
    TypeError
        If a visible site is real-valued or has more than two float values, or
        a categorical site has no one-hot energy.
    ValueError
        If ``num_proposals`` is not a positive integer.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ebm.models import BernoulliRBM
    >>> rbm = BernoulliRBM(6, 3)
    >>> params = rbm.init_params()
    >>> kernel = gibbs_with_gradients(rbm, num_proposals=4)
    >>> state = kernel.init(jax.random.key(0), {"v": jnp.zeros(6)}, params)
    >>> state, info = kernel.step(jax.random.key(1), state, params)
    >>> state.position["v"].shape, int(info.num_accepted) <= 4
    ((6,), True)
    """
    sites = _check_sites(model)
    num_proposals = _check_num_proposals(num_proposals)
    onehot_energy = _resolve_onehot_energy(model, sites, onehot_energy)
    beta = inverse_temperature
    sizes = [
        site.size * (len(site.domain) if site.is_categorical else 1) for site in sites
    ]
    offsets = [int(offset) for offset in np.cumsum([0] + sizes)]

    def cast(position):
        return {
            site.name: jnp.asarray(
                position[site.name],
                jnp.int32 if site.is_categorical else jnp.result_type(float),
            )
            for site in sites
        }

    def single_energy(params, x):
        return model.energy(params, jax.tree.map(lambda v: v[None], x))[0]

    def energy_and_gradient(params, x):
        if onehot_energy is None:
            return jax.value_and_grad(single_energy, argnums=1)(params, x)
        relaxed = {
            site.name: jax.nn.one_hot(x[site.name], len(site.domain))
            if site.is_categorical
            else x[site.name]
            for site in sites
        }

        def single_relaxed(relaxed):
            return onehot_energy(params, jax.tree.map(lambda v: v[None], relaxed))[0]

        return single_energy(params, x), jax.grad(single_relaxed)(relaxed)

    def proposal_logits(x, energy_gradient):
        parts = []
        for site in sites:
            slope = -beta * energy_gradient[site.name]
            current = x[site.name].reshape(-1)
            if site.is_categorical:
                slope = slope.reshape(site.size, -1)
                gain = slope - jnp.take_along_axis(slope, current[:, None], axis=1)
                is_current = jax.nn.one_hot(current, slope.shape[1], dtype=bool)
                gain = jnp.where(is_current, -jnp.inf, gain)
            else:
                low, high = site.domain
                gain = (low + high - 2.0 * current) * slope.reshape(-1)
            parts.append(PROPOSAL_SCALE * gain.reshape(-1))
        return jnp.concatenate(parts)

    def evaluate(params, x):
        energy, gradient = energy_and_gradient(params, x)
        return energy, proposal_logits(x, gradient)

    def apply_move(x, move):
        """Return x with ``move`` applied and the index of the move back."""
        new_x, reverse = {}, jnp.zeros((), move.dtype)
        for site, offset, count in zip(sites, offsets[:-1], sizes, strict=True):
            local = move - offset
            hit = (local >= 0) & (local < count)
            local = jnp.clip(local, 0, count - 1)
            flat = x[site.name].reshape(-1)
            if site.is_categorical:
                q = len(site.domain)
                element, value = local // q, (local % q).astype(flat.dtype)
                back = offset + element * q + flat[element]
            else:
                low, high = site.domain
                element, value, back = local, low + high - flat[local], move
            flat = flat.at[element].set(jnp.where(hit, value, flat[element]))
            new_x[site.name] = flat.reshape(site.shape)
            reverse = jnp.where(hit, back, reverse)
        return new_x, reverse

    def init(
        rng_key: PRNGKey, position: Configuration, params: Params
    ) -> GibbsWithGradientsState:
        return GibbsWithGradientsState(cast(position))

    def step(
        rng_key: PRNGKey, state: GibbsWithGradientsState, params: Params
    ) -> tuple[GibbsWithGradientsState, GibbsWithGradientsInfo]:
        x = cast(state.position)
        energy, logits = evaluate(params, x)

        def propose(carry, key):
            x, energy, logits = carry
            key_move, key_accept = jax.random.split(key)
            move = jax.random.categorical(key_move, logits)
            new_x, reverse = apply_move(x, move)
            new_energy, new_logits = evaluate(params, new_x)
            log_ratio = (
                -beta * (new_energy - energy)
                + jax.nn.log_softmax(new_logits)[reverse]
                - jax.nn.log_softmax(logits)[move]
            )
            accept_prob = jnp.exp(jnp.minimum(log_ratio, 0.0))
            accepted = jax.random.uniform(key_accept) < accept_prob
            carry = jax.tree.map(
                lambda new, old: jnp.where(accepted, new, old),
                (new_x, new_energy, new_logits),
                (x, energy, logits),
            )
            return carry, (accept_prob, accepted)

        keys = jax.random.split(rng_key, num_proposals)
        (x, _, _), (accept_probs, accepted) = jax.lax.scan(
            propose, (x, energy, logits), keys
        )
        info = GibbsWithGradientsInfo(jnp.mean(accept_probs), jnp.sum(accepted))
        return GibbsWithGradientsState(x), info

    return Kernel(init, step)


class GibbsWithGradients(EnergyMCMCKernel):
    """Gibbs-with-Gradients as a ``numpyro.infer.MCMCKernel``.

    See :func:`gibbs_with_gradients` for the parameters.

    Examples
    --------
    >>> import jax
    >>> from numpyro.infer import MCMC
    >>> from numpyro_ebm.models.pairwise import Potts
    >>> model = Potts(4, 3)
    >>> mcmc = MCMC(GibbsWithGradients(model), num_warmup=5, num_samples=10,
    ...             progress_bar=False)
    >>> mcmc.run(jax.random.key(0), model.init_params())
    >>> mcmc.get_samples()["x"].shape
    (10, 4)
    """

    def __init__(
        self,
        model: EnergyModel,
        inverse_temperature: float = 1.0,
        *,
        num_proposals: int = 1,
        onehot_energy: Callable[[Params, Configuration], Array] | None = None,
    ):
        kernel = gibbs_with_gradients(
            model,
            inverse_temperature,
            num_proposals=num_proposals,
            onehot_energy=onehot_energy,
        )
        super().__init__(model, kernel)
