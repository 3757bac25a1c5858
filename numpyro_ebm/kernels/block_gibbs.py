"""Block Gibbs sampling for bipartite binary models such as the RBM.

One step is a full sweep: every hidden unit is drawn from p(h | v) at once,
then every visible unit from p(v | h'). At inverse temperature β both
conditionals become σ(β · logit).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from numpyro_ebm.kernels.base import EnergyMCMCKernel, Kernel, check_inverse_temperature
from numpyro_ebm.models.energy import EnergyModel
from numpyro_ebm.types import Array, Configuration, Params, PRNGKey


class BlockGibbsState(NamedTuple):
    """State of one block Gibbs chain.

    Attributes
    ----------
    position
        Visible configuration, keyed by the visible site name.
    hidden
        Hidden configuration drawn in the last half-sweep.
    """

    position: dict[str, Array]
    hidden: Array


class BlockGibbsInfo(NamedTuple):
    """Per-step diagnostics of block Gibbs.

    Attributes
    ----------
    hidden_activation
        Mean of p(h_j = 1 | v) over the hidden units, before the step's draw.
    """

    hidden_activation: Array


def _check_bipartite(model: EnergyModel) -> str:
    for method in ("hidden_logits", "visible_logits"):
        if not callable(getattr(model, method, None)):
            raise TypeError(
                f"block Gibbs needs a bipartite model with `hidden_logits` and "
                f"`visible_logits` methods (such as BernoulliRBM); "
                f"{type(model).__name__} has no `{method}`."
            )
    if len(model.visible_sites) != 1:
        raise TypeError("block Gibbs needs a model with a single visible site.")
    return model.visible_sites[0].name


def block_gibbs(model: EnergyModel, inverse_temperature: float = 1.0) -> Kernel:
    """Build the block Gibbs kernel of a bipartite binary model.

    Parameters
    ----------
    model
        A model with ``hidden_logits(params, v)`` and ``visible_logits(params, h)``
        such as :class:`~numpyro_ebm.models.BernoulliRBM`.
    inverse_temperature
        β: the kernel samples from p(x) ∝ exp(−β E(x)).

    Returns
    -------
    Kernel
        Pure ``init(rng_key, position, params)`` and
        ``step(rng_key, state, params)`` for one chain.

    Examples
    --------
    >>> import jax
    >>> from numpyro_ebm.models import BernoulliRBM
    >>> rbm = BernoulliRBM(6, 3)
    >>> params = rbm.init_params()
    >>> kernel = block_gibbs(rbm)
    >>> state = kernel.init(jax.random.key(0), {"v": jax.numpy.zeros(6)}, params)
    >>> state, info = kernel.step(jax.random.key(1), state, params)
    >>> state.position["v"].shape
    (6,)
    """
    name = _check_bipartite(model)
    beta = check_inverse_temperature(inverse_temperature)

    def sample_hidden(rng_key, v, params):
        probs = jax.nn.sigmoid(beta * model.hidden_logits(params, v))
        hidden = jax.random.bernoulli(rng_key, probs).astype(v.dtype)
        return hidden, probs

    def init(
        rng_key: PRNGKey, position: Configuration, params: Params
    ) -> BlockGibbsState:
        v = jnp.asarray(position[name], dtype=float)
        hidden, _ = sample_hidden(rng_key, v, params)
        return BlockGibbsState({name: v}, hidden)

    def step(
        rng_key: PRNGKey, state: BlockGibbsState, params: Params
    ) -> tuple[BlockGibbsState, BlockGibbsInfo]:
        key_hidden, key_visible = jax.random.split(rng_key)
        v = state.position[name]

        hidden, hidden_probs = sample_hidden(key_hidden, v, params)

        visible_probs = jax.nn.sigmoid(beta * model.visible_logits(params, hidden))
        v_new = jax.random.bernoulli(key_visible, visible_probs).astype(v.dtype)

        info = BlockGibbsInfo(jnp.mean(hidden_probs))
        return BlockGibbsState({name: v_new}, hidden), info

    return Kernel(init, step)


class BlockGibbs(EnergyMCMCKernel):
    """Block Gibbs for a bipartite binary model, as a ``numpyro.infer.MCMCKernel``.

    Parameters
    ----------
    model
        A bipartite model such as :class:`~numpyro_ebm.models.BernoulliRBM`.
    inverse_temperature
        β: the kernel samples from p(x) ∝ exp(−β E(x)).

    Examples
    --------
    >>> import jax
    >>> from numpyro.infer import MCMC
    >>> from numpyro_ebm.models import BernoulliRBM
    >>> rbm = BernoulliRBM(6, 3)
    >>> mcmc = MCMC(BlockGibbs(rbm), num_warmup=10, num_samples=20, progress_bar=False)
    >>> mcmc.run(jax.random.key(0), rbm.init_params())
    >>> mcmc.get_samples()["v"].shape
    (20, 6)
    """

    def __init__(self, model: EnergyModel, inverse_temperature: float = 1.0):
        super().__init__(model, block_gibbs(model, inverse_temperature))
