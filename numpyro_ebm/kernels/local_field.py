r"""Single-site Gibbs sampling driven by incrementally updated local fields.

For pairwise models the conditional of one element depends on the others only
through its local field. For a two-valued element x_i ∈ {d_0, d_1} (spins or
binary units) with E(x) = −½ xᵀ J x − h·x,

.. math::

    p(x_i = d_1 \mid x_{-i}) = σ\big(β (d_1 − d_0) L_i\big), \qquad L = J x + h,

and for a categorical element σ_i ∈ {0, …, q − 1} of a Potts model,

.. math::

    p(σ_i = a \mid σ_{-i}) ∝ \exp\big(β F_i(σ)_a\big), \qquad
    F_i(σ)_a = h_i(a) + Σ_j J_{ij}(a, σ_j).

A step is a sweep of N single-site updates. The fields are computed once per
sweep and then kept up to date: after x_i changes from a to a′ the fields move
by the couplings of site i, L ← L + J_{:,i}(a′ − a) or
F ← F + J_{i,a′,:,:} − J_{i,a,:,:}. A site update therefore costs O(N q), against
O(N² q) for the energy differences that :func:`~numpyro_ebm.kernels.site_gibbs`
evaluates. The fields are recomputed at the start of every sweep because θ may
change between steps, so rounding errors never accumulate beyond one sweep.

The kernel works for any model with a single visible site and no latent sites
that provides

- ``local_fields(params, x)``: L of shape (batch, *site.shape) for two-valued
  elements, or F of shape (batch, *site.shape, q) for categorical ones, and
- ``coupling_matrix(params)``: J of shape (N, N) or (N, q, N, q) over the
  row-major flattened elements, symmetric (J[i, a, j, b] = J[j, b, i, a]) with
  zero diagonal (blocks),

as :class:`~numpyro_ebm.models.pairwise.SpinGlass` and
:class:`~numpyro_ebm.models.pairwise.Potts` do. Without symmetry and zero
diagonal the conditionals above are not those of the energy, and the kernel
samples the wrong distribution.

References
----------
Geman, S. and Geman, D. (1984). Stochastic relaxation, Gibbs distributions,
and the Bayesian restoration of images. IEEE Transactions on Pattern Analysis
and Machine Intelligence 6(6).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from numpyro_ebm.kernels.base import EnergyMCMCKernel, Kernel
from numpyro_ebm.models.energy import EnergyModel
from numpyro_ebm.models.sites import Site
from numpyro_ebm.types import Array, Configuration, Params, PRNGKey

SCANS = ("sequential", "random")


class LocalFieldGibbsState(NamedTuple):
    """State of one local-field Gibbs chain.

    Attributes
    ----------
    position
        Visible configuration, keyed by the site name.
    local_fields
        Local fields of ``position`` at the parameters of the last step, in the
        layout of ``model.local_fields`` without the batch axis. The next step
        recomputes them, since θ may have changed.
    """

    position: dict[str, Array]
    local_fields: Array


class LocalFieldGibbsInfo(NamedTuple):
    """Per-sweep diagnostics of local-field Gibbs.

    Attributes
    ----------
    flip_rate
        Fraction of the sweep's N site updates that changed the element.
    """

    flip_rate: Array


def _check_model(model: EnergyModel) -> Site:
    """Return the single visible site of a model that has local fields and couplings."""
    for method in ("local_fields", "coupling_matrix"):
        if not callable(getattr(model, method, None)):
            raise TypeError(
                f"local-field Gibbs needs a model with `local_fields` and "
                f"`coupling_matrix` methods (such as SpinGlass or Potts); "
                f"{type(model).__name__} has no `{method}`."
            )
    if len(model.visible_sites) != 1 or model.latent_sites:
        raise TypeError(
            "local-field Gibbs needs a model with one visible site and no latent "
            f"sites; {model!r} has visible sites {list(model.visible_names)} and "
            f"latent sites {[s.name for s in model.latent_sites]}."
        )
    site = model.visible_sites[0]
    if not site.is_discrete or not (site.is_categorical or len(site.domain) == 2):
        raise TypeError(
            f"local-field Gibbs needs a site with two values (spins or binary "
            f"units) or categorical values 0, ..., q - 1; site `{site.name}` has "
            f"domain {site.domain}."
        )
    return site


def _check_scan(scan: str) -> str:
    if scan not in SCANS:
        raise ValueError(f"`scan` must be one of {SCANS}; got {scan!r}.")
    return scan


def local_field_gibbs(
    model: EnergyModel, inverse_temperature: float = 1.0, *, scan: str = "sequential"
) -> Kernel:
    """Build the local-field single-site Gibbs kernel of a pairwise model.

    Parameters
    ----------
    model
        A model with ``local_fields`` and ``coupling_matrix``, such as
        :class:`~numpyro_ebm.models.pairwise.SpinGlass` or
        :class:`~numpyro_ebm.models.pairwise.Potts`.
    inverse_temperature
        β: the kernel samples from p(x) ∝ exp(−β E(x)). May be a traced scalar.
    scan
        ``"sequential"`` visits the elements in order 0, …, N − 1;
        ``"random"`` draws each of the N updates of a sweep uniformly from all
        elements, independently (random-scan Gibbs, which is reversible).

    Returns
    -------
    Kernel
        Pure ``init`` and ``step`` for one chain; a step is one sweep of N
        updates.

    Raises
    ------
    TypeError
        If the model lacks the methods above, has latent sites or several
        visible sites, or its site is neither two-valued nor categorical.
    ValueError
        If ``scan`` is not one of ``"sequential"`` and ``"random"``.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from numpyro_ebm.models.pairwise import Potts
    >>> model = Potts(5, 3)
    >>> params = model.init_params()
    >>> kernel = local_field_gibbs(model, scan="random")
    >>> state = kernel.init(jax.random.key(0), {"x": jnp.zeros(5, jnp.int32)}, params)
    >>> state, info = kernel.step(jax.random.key(1), state, params)
    >>> state.position["x"].shape, state.local_fields.shape
    ((5,), (5, 3))
    """
    site = _check_model(model)
    scan = _check_scan(scan)
    name, size, beta = site.name, site.size, inverse_temperature
    categorical = site.is_categorical
    dtype = jnp.int32 if categorical else jnp.result_type(float)

    def compute_fields(params, x):
        return model.local_fields(params, x[None])[0]

    def flat_couplings(params):
        couplings = model.coupling_matrix(params)
        if categorical:
            q = len(site.domain)
            return couplings.reshape(size, q, size, q)
        return couplings.reshape(size, size)

    def init(
        rng_key: PRNGKey, position: Configuration, params: Params
    ) -> LocalFieldGibbsState:
        x = jnp.asarray(position[name], dtype=dtype)
        return LocalFieldGibbsState({name: x}, compute_fields(params, x))

    def update_two_valued(key, i, x, fields, couplings):
        low, high = site.domain
        logit = beta * (high - low) * fields[i]
        new = jnp.where(jax.random.uniform(key) < jax.nn.sigmoid(logit), high, low)
        fields = fields + couplings[i] * (new - x[i])
        return new, fields

    def update_categorical(key, i, x, fields, couplings):
        new = jax.random.categorical(key, beta * fields[i]).astype(dtype)
        fields = fields + couplings[i, new] - couplings[i, x[i]]
        return new, fields

    update = update_categorical if categorical else update_two_valued

    def step(
        rng_key: PRNGKey, state: LocalFieldGibbsState, params: Params
    ) -> tuple[LocalFieldGibbsState, LocalFieldGibbsInfo]:
        key_order, key_updates = jax.random.split(rng_key)
        if scan == "sequential":
            order = jnp.arange(size)
        else:
            order = jax.random.randint(key_order, (size,), 0, size)
        keys = jax.random.split(key_updates, size)
        couplings = flat_couplings(params)
        x = state.position[name].reshape(size)
        fields = compute_fields(params, state.position[name])
        fields = fields.reshape((size, -1) if categorical else (size,))

        def body(t, carry):
            x, fields, flips = carry
            i = order[t]
            new, fields = update(keys[t], i, x, fields, couplings)
            flips = flips + (new != x[i])
            return x.at[i].set(new), fields, flips

        x, fields, flips = jax.lax.fori_loop(
            0, size, body, (x, fields, jnp.zeros((), jnp.int32))
        )
        position = {name: x.reshape(site.shape)}
        fields = fields.reshape(state.local_fields.shape)
        info = LocalFieldGibbsInfo(flips / size)
        return LocalFieldGibbsState(position, fields), info

    return Kernel(init, step)


class LocalFieldGibbs(EnergyMCMCKernel):
    """Local-field Gibbs as a ``numpyro.infer.MCMCKernel``; see :func:`local_field_gibbs`.

    Examples
    --------
    >>> import jax
    >>> from numpyro.infer import MCMC
    >>> from numpyro_ebm.models.pairwise import SpinGlass
    >>> model = SpinGlass(6)
    >>> mcmc = MCMC(LocalFieldGibbs(model), num_warmup=5, num_samples=10,
    ...             progress_bar=False)
    >>> mcmc.run(jax.random.key(0), model.init_params())
    >>> mcmc.get_samples()["s"].shape
    (10, 6)
    """

    def __init__(
        self,
        model: EnergyModel,
        inverse_temperature: float = 1.0,
        *,
        scan: str = "sequential",
    ):
        super().__init__(
            model, local_field_gibbs(model, inverse_temperature, scan=scan)
        )
