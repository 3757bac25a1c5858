r"""Neural energies: E_θ(x) given by a function whose parameters are any pytree.

:class:`NeuralEnergy` accepts parameters as a nested pytree (for example a
list of ``(weights, bias)`` layers) and stores them as a flat dict of arrays
keyed by their path (``"0/0"``, ``"0/1"``, ... for that list), which is what the
learner, the optimiser and :class:`~numpyro_ebm.learning.Penalty` work on.
:meth:`NeuralEnergy.unflatten` gives the pytree back.

:func:`init_mlp` and :func:`mlp_energy` define a small multilayer perceptron
in plain JAX,

.. math::

    E_θ(x) = f_θ(x) + \frac{\lVert x \rVert^2}{2 s^2},

where f_θ is the network and the optional quadratic term with scale s makes
exp(−E_θ) integrable whatever the network does far from the data (a Gaussian
base measure of standard deviation s).
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_ebm.models.energy import EnergyModel
from numpyro_ebm.models.sites import Site
from numpyro_ebm.types import Array, ArrayTree, Configuration, Params, PRNGKey

PATH_SEPARATOR = "/"


def _path_name(path: tuple) -> str:
    parts = []
    for key in path:
        for attribute in ("key", "idx", "name"):
            if hasattr(key, attribute):
                parts.append(str(getattr(key, attribute)))
                break
        else:
            parts.append(str(key))
    return PATH_SEPARATOR.join(parts)


class NeuralEnergy(EnergyModel):
    """Energy model of one real-valued site with pytree parameters.

    Parameters
    ----------
    energy_fn
        ``energy_fn(params, x)``: energy of one configuration ``x`` of shape
        ``shape`` (or of a batch when ``batched=True``) for parameters with the
        structure of ``init_params``.
    init_params
        Initial parameters: any pytree of arrays (unconstrained).
    shape
        Shape of one configuration.
    name
        Name of the single site.
    batched
        Whether ``energy_fn`` already accepts a leading batch axis.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> layers = init_mlp(jax.random.key(0), [2, 8, 1])
    >>> model = NeuralEnergy(mlp_energy, layers, shape=2)
    >>> sorted(model.init_params())
    ['0/0', '0/1', '1/0', '1/1']
    >>> model.energy(model.init_params(), jnp.zeros((3, 2))).shape
    (3,)
    """

    def __init__(
        self,
        energy_fn: Callable[[ArrayTree, Array], Array],
        init_params: ArrayTree,
        shape: int | Sequence[int],
        *,
        name: str = "x",
        batched: bool = False,
    ):
        leaves, self.treedef = jax.tree_util.tree_flatten_with_path(init_params)
        if not leaves:
            raise ValueError("`init_params` has no arrays; a neural energy needs some.")
        self.leaf_names = tuple(_path_name(path) for path, _ in leaves)
        if len(set(self.leaf_names)) != len(self.leaf_names):
            raise ValueError(
                f"`init_params` has leaves whose paths give the same name: "
                f"{self.leaf_names}."
            )
        flat = {
            name: jnp.asarray(leaf)
            for name, (_, leaf) in zip(self.leaf_names, leaves, strict=True)
        }
        shape = (shape,) if isinstance(shape, int | np.integer) else tuple(shape)
        site = Site(name, shape, None)
        batch_fn = energy_fn if batched else jax.vmap(energy_fn, in_axes=(None, 0))

        def joint_energy_fn(params: Params, x: Configuration) -> Array:
            return batch_fn(self.unflatten(params), x[name])

        super().__init__(joint_energy_fn, flat, [site])

    def unflatten(self, params: Params) -> ArrayTree:
        """Return the parameter pytree of a flat parameter dict."""
        return jax.tree_util.tree_unflatten(
            self.treedef, [params[name] for name in self.leaf_names]
        )

    def flatten(self, tree: ArrayTree) -> dict[str, Array]:
        """Return the flat parameter dict of a pytree with the initial structure."""
        leaves = jax.tree_util.tree_leaves(tree)
        if len(leaves) != len(self.leaf_names):
            raise ValueError(
                f"the pytree has {len(leaves)} leaves; the model's parameters have "
                f"{len(self.leaf_names)}."
            )
        return dict(zip(self.leaf_names, leaves, strict=True))


def init_mlp(rng_key: PRNGKey, layer_sizes: Sequence[int]) -> list[tuple[Array, Array]]:
    """Initialise MLP layers ``[(W, b), ...]`` with LeCun-normal weights, zero biases.

    Parameters
    ----------
    rng_key
        Random key.
    layer_sizes
        Input size, hidden sizes and output size, for example ``[2, 64, 64, 1]``.

    Examples
    --------
    >>> import jax
    >>> [w.shape for w, b in init_mlp(jax.random.key(0), [2, 16, 1])]
    [(2, 16), (16, 1)]
    """
    sizes = [int(size) for size in layer_sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(
            "`layer_sizes` must list at least an input and an output size, all "
            f"positive; got {list(layer_sizes)}."
        )
    keys = jax.random.split(rng_key, len(sizes) - 1)
    layers = []
    for key, fan_in, fan_out in zip(keys, sizes[:-1], sizes[1:], strict=True):
        weights = jax.random.normal(key, (fan_in, fan_out)) / np.sqrt(fan_in)
        layers.append((weights, jnp.zeros(fan_out)))
    return layers


def mlp_energy(
    layers: Sequence[tuple[Array, Array]],
    x: Array,
    *,
    activation: Callable[[Array], Array] = jax.nn.silu,
    base_scale: float | None = None,
) -> Array:
    """Compute the energy of one configuration: an MLP output plus ‖x‖²/(2s²).

    Parameters
    ----------
    layers
        ``[(W, b), ...]`` as from :func:`init_mlp`; the last layer has one output.
    x
        One configuration (flattened before the first layer).
    activation
        Nonlinearity between layers.
    base_scale
        s of the Gaussian base measure; ``None`` leaves it out.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> layers = init_mlp(jax.random.key(0), [2, 4, 1])
    >>> mlp_energy(layers, jnp.zeros(2), base_scale=1.0).shape
    ()
    """
    hidden = jnp.ravel(x)
    for weights, bias in layers[:-1]:
        hidden = activation(hidden @ weights + bias)
    weights, bias = layers[-1]
    energy = jnp.squeeze(hidden @ weights + bias, axis=-1)
    if base_scale is not None:
        energy = energy + jnp.sum(jnp.ravel(x) ** 2) / (2.0 * base_scale**2)
    return energy


def mlp_energy_model(
    rng_key: PRNGKey,
    dim: int,
    hidden_sizes: Sequence[int] = (64, 64),
    *,
    activation: Callable[[Array], Array] = jax.nn.silu,
    base_scale: float | None = None,
) -> NeuralEnergy:
    """Build a :class:`NeuralEnergy` of x ∈ ℝ^dim given by :func:`mlp_energy`.

    Examples
    --------
    >>> import jax
    >>> model = mlp_energy_model(jax.random.key(0), 2, (16,), base_scale=4.0)
    >>> model.visible_sites[0].shape
    (2,)
    """
    layers = init_mlp(rng_key, [dim, *hidden_sizes, 1])

    def energy(params: Any, x: Array) -> Array:
        return mlp_energy(params, x, activation=activation, base_scale=base_scale)

    return NeuralEnergy(energy, layers, shape=dim)
