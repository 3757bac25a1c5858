"""The energy-model abstraction: E_θ(x) from a NumPyro model or a plain function.

An energy model defines p_θ(x) = exp(−E_θ(x)) / Z_θ. For a model written in
NumPyro syntax the energy is the negative log joint density of the model with
its ``numpyro.param`` sites set to θ, its unobserved ``numpyro.sample`` sites
set to x, and every ``numpyro.factor`` adding −E. The energy therefore plays
the role of NumPyro's ``potential_fn`` and of BlackJAX's ``logdensity_fn`` with
the opposite sign.

Parameters reach every method as an explicit argument, in unconstrained
coordinates (the values an optimiser updates), so a kernel always receives the
current θ and a changed θ never triggers a new trace.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from numpyro import handlers
from numpyro.distributions import biject_to, constraints
from numpyro.infer.util import log_density, potential_energy

from numpyro_ebm.models.enumeration import decode_configurations, num_configurations
from numpyro_ebm.models.sites import Site
from numpyro_ebm.models.validation import check_configuration
from numpyro_ebm.types import Array, ArrayLike, Configuration, Params, PRNGKey

# Latent sites are summed out by enumeration when no closed form is given; above
# this many latent configurations per example the cost is refused.
MAX_LATENT_CONFIGURATIONS = 2**16


class EnergyModel:
    """Energy function E_θ(x) over named sites, with parameters θ.

    Most users build one with :meth:`from_numpyro` or :meth:`from_energy_fn`.
    Built-in models subclass it and add closed forms (conditionals, free
    energies) that fast kernels and estimators use.

    Parameters
    ----------
    joint_energy_fn
        ``joint_energy_fn(constrained_params, x) -> energies`` for a batch ``x``
        (a dict of site name to array with a leading batch axis) holding every
        site, visible and latent. Returns an array of shape ``(batch,)``.
    init_params
        Initial parameter values in constrained coordinates, keyed by name.
    sites
        Every random variable of the model.
    visible
        Names of the sites that data provide. The other sites are latent and
        are summed out by :meth:`energy`. Defaults to all sites.
    transforms
        Map from a parameter name to the bijection from unconstrained to
        constrained values. Parameters not listed are unconstrained.
    potential_fn
        Optional ``potential_fn(constrained_params, z) -> scalar`` for one
        configuration ``z`` of all sites in unconstrained coordinates,
        including the log-Jacobian of the sites' transforms. Defaults to the
        joint energy, which is correct for discrete and real-valued sites.
    """

    def __init__(
        self,
        joint_energy_fn: Callable[[Params, Configuration], Array],
        init_params: Mapping[str, ArrayLike],
        sites: Sequence[Site],
        *,
        visible: Sequence[str] | None = None,
        transforms: Mapping[str, Any] | None = None,
        potential_fn: Callable[[Params, Configuration], Array] | None = None,
    ):
        if not sites:
            raise ValueError(
                "`sites` is empty: an energy model needs at least one site."
            )
        names = [site.name for site in sites]
        if len(set(names)) != len(names):
            raise ValueError(f"`sites` has repeated names: {names}.")
        visible = names if visible is None else list(visible)
        unknown = sorted(set(visible) - set(names))
        if unknown or not visible:
            raise ValueError(
                f"`visible` must be a non-empty subset of the site names {names}; "
                f"got {visible}."
            )
        self._joint_energy_fn = joint_energy_fn
        self._potential_fn = potential_fn
        self.sites = tuple(sites)
        self.visible_sites = tuple(s for s in self.sites if s.name in visible)
        self.latent_sites = tuple(s for s in self.sites if s.name not in visible)
        self.transforms = {
            name: transforms.get(name, biject_to(constraints.real))
            if transforms
            else biject_to(constraints.real)
            for name in init_params
        }
        self._init_params = {
            name: self.transforms[name].inv(jnp.asarray(value))
            for name, value in init_params.items()
        }
        self.site_names = tuple(names)

    # -- constructors ------------------------------------------------------------

    @classmethod
    def from_numpyro(
        cls,
        model: Callable,
        *model_args: Any,
        visible: Sequence[str] | None = None,
        rng_key: PRNGKey | None = None,
        **model_kwargs: Any,
    ) -> "EnergyModel":
        """Build an energy model from a NumPyro model function.

        ``numpyro.param`` sites become θ (their constraints are respected and
        the optimiser works on unconstrained values), unobserved
        ``numpyro.sample`` sites become x, and ``numpyro.factor`` adds −E. The
        log densities of the sample sites' distributions are part of −E, so a
        site with ``dist.ImproperUniform`` contributes nothing and a site with
        ``dist.Bernoulli(logits=b)`` contributes the field term.

        Parameters
        ----------
        model
            A callable containing NumPyro primitives.
        *model_args, **model_kwargs
            Fixed arguments passed to ``model`` on every call.
        visible
            Names of the sample sites that data provide; the others are summed
            out. Defaults to every unobserved sample site.
        rng_key
            Key for the ``init_value`` functions of the param sites.

        Examples
        --------
        >>> import jax.numpy as jnp
        >>> import numpyro
        >>> import numpyro.distributions as dist
        >>> from numpyro.distributions import constraints
        >>> def ising_pair():
        ...     coupling = numpyro.param("coupling", 0.5)
        ...     x = numpyro.sample("x", dist.ImproperUniform(constraints.boolean, (), (2,)))
        ...     numpyro.factor("coupling_term", coupling * x[0] * x[1])
        >>> model = EnergyModel.from_numpyro(ising_pair)
        >>> model.energy(model.init_params(), {"x": jnp.array([[1.0, 1.0]])}).tolist()
        [-0.5]
        """
        rng_key = jax.random.key(0) if rng_key is None else rng_key
        init_params, transforms, sites, supports = _inspect_numpyro_model(
            model, model_args, model_kwargs, rng_key, return_supports=True
        )

        def single_energy(params, x):
            log_joint, _ = log_density(model, model_args, model_kwargs, {**params, **x})
            return -log_joint

        def joint_energy_fn(params, x):
            return jax.vmap(single_energy, in_axes=(None, 0))(params, x)

        discrete = {site.name for site in sites if site.is_discrete}

        def potential_fn(params, z):
            # NumPyro's potential_energy transforms only continuous sites, so θ and
            # the discrete sites are substituted as they are.
            fixed = {k: v for k, v in z.items() if k in discrete}
            continuous = {k: v for k, v in z.items() if k not in discrete}
            substituted = handlers.substitute(model, data={**params, **fixed})
            return potential_energy(substituted, model_args, model_kwargs, continuous)

        energy_model = cls(
            joint_energy_fn,
            init_params,
            sites,
            visible=visible,
            transforms=transforms,
            potential_fn=potential_fn,
        )
        # Bijections from unconstrained to constrained values of the continuous
        # sites, which HMC, NUTS and Langevin kernels sample in.
        energy_model.site_transforms = {
            site.name: biject_to(supports[site.name])
            for site in sites
            if not site.is_discrete
        }
        return energy_model

    @classmethod
    def from_energy_fn(
        cls,
        energy_fn: Callable[[Params, Array], Array],
        init_params: Mapping[str, ArrayLike],
        shape: int | Sequence[int],
        domain: Sequence[float] | None = (0.0, 1.0),
        *,
        name: str = "x",
        batched: bool = False,
    ) -> "EnergyModel":
        """Build an energy model from a plain function ``energy_fn(params, x)``.

        Parameters
        ----------
        energy_fn
            Energy of one configuration ``x`` of shape ``shape``, a scalar (or of
            a batch with a leading axis when ``batched=True``, an array of shape
            ``(batch,)``; the output shape is checked once here). Its parameters
            are used as given, without constraints. Comparisons such as
            ``x[0] == x[1]`` are booleans, and JAX adds booleans as a logical
            or, so cast them (``.astype(float)``) before summing.
        init_params
            Initial parameter values keyed by name.
        shape
            Shape of one configuration.
        domain
            Distinct values each element takes: ``(0.0, 1.0)`` for binary units
            (the default), ``(-1.0, 1.0)`` for spins, ``tuple(range(q))`` for
            categorical variables, or ``None`` for real values.
        name
            Name of the single site.
        batched
            Whether ``energy_fn`` already accepts a leading batch axis.

        Examples
        --------
        >>> import jax.numpy as jnp
        >>> model = EnergyModel.from_energy_fn(
        ...     lambda p, x: -jnp.dot(p["bias"], x), {"bias": jnp.ones(3)}, shape=3
        ... )
        >>> model.energy(model.init_params(), jnp.ones((1, 3))).tolist()
        [-3.0]
        """
        site = Site(name, _check_shape(shape), _check_domain(domain))
        batch_fn = energy_fn if batched else jax.vmap(energy_fn, in_axes=(None, 0))

        def joint_energy_fn(params, x):
            return batch_fn(params, x[name])

        model = cls(joint_energy_fn, init_params, [site])
        _check_energy_output(model, site)
        return model

    # -- parameters --------------------------------------------------------------

    def init_params(self) -> dict[str, Array]:
        """Return the initial parameters in unconstrained coordinates."""
        return dict(self._init_params)

    def constrain(self, params: Params) -> dict[str, Array]:
        """Map unconstrained parameters to their constrained values."""
        return {name: self.transforms[name](value) for name, value in params.items()}

    def unconstrain(self, params: Params) -> dict[str, Array]:
        """Map constrained parameter values to unconstrained coordinates."""
        return {
            name: self.transforms[name].inv(value) for name, value in params.items()
        }

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the parameters θ."""
        return tuple(self._init_params)

    # -- energies ----------------------------------------------------------------

    def joint_energy(self, params: Params, x: Configuration) -> Array:
        """Energy of a batch of configurations of every site, visible and latent."""
        return self._joint_energy_fn(self.constrain(params), x)

    def energy(self, params: Params, x: Configuration | ArrayLike) -> Array:
        """Energy E_θ(x) of a batch of visible configurations.

        Latent sites are summed out, so this is the free energy
        F_θ(v) = −log Σ_h exp(−E_θ(v, h)) when the model has latent sites.

        Parameters
        ----------
        params
            Unconstrained parameters.
        x
            Dict of visible site name to an array with a leading batch axis, or
            one array when the model has a single visible site.

        Returns
        -------
        Array
            Energies of shape ``(batch,)``.
        """
        return self.marginal_energy(params, self.as_configuration(x, check=False))

    def marginal_energy(self, params: Params, x: Configuration) -> Array:
        """Energy with every site not in ``x`` summed out, for a batch ``x``.

        Subclasses override this with closed forms; the default enumerates the
        summed-out sites, which must be discrete and small.
        """
        missing = [site for site in self.sites if site.name not in x]
        if not missing:
            return self.joint_energy(params, x)
        count = num_configurations(missing)
        if count > MAX_LATENT_CONFIGURATIONS:
            raise ValueError(
                f"summing out sites {[s.name for s in missing]} needs {count} "
                f"configurations per example, above MAX_LATENT_CONFIGURATIONS = "
                f"{MAX_LATENT_CONFIGURATIONS}; give the model a closed-form "
                "marginal_energy or make those sites visible."
            )
        latent = decode_configurations(missing, jnp.arange(count))
        constrained = self.constrain(params)

        def one_example(example):
            tiled = {
                k: jnp.broadcast_to(v, (count,) + v.shape) for k, v in example.items()
            }
            energies = self._joint_energy_fn(constrained, {**tiled, **latent})
            return -jax.nn.logsumexp(-energies)

        return jax.vmap(one_example)(x)

    def potential_fn(self, params: Params) -> Callable[[Configuration], Array]:
        """Return the potential energy of one configuration at parameters θ.

        The returned function takes every site in unconstrained coordinates and
        includes the log-Jacobian of their transforms, as NumPyro's
        ``potential_fn`` does. θ is an argument here rather than a value found
        at initialisation, so the function a kernel receives always reflects
        the parameters it was built from.
        """
        constrained = self.constrain(params)
        if self._potential_fn is not None:
            return lambda z: self._potential_fn(constrained, z)

        def potential(z):
            batched = jax.tree.map(lambda v: v[None], z)
            return self._joint_energy_fn(constrained, batched)[0]

        return potential

    # -- data --------------------------------------------------------------------

    def as_configuration(
        self,
        x: Configuration | ArrayLike,
        *,
        name: str = "data",
        sites: Sequence[Site] | None = None,
        check: bool = True,
    ) -> dict[str, Array]:
        """Convert ``x`` to a dict of batched arrays over the visible sites.

        With ``check=True`` the values are validated eagerly: shapes, finite
        values, membership of each site's domain, and a non-empty batch.
        Integer and boolean arrays are cast to the site's dtype.
        """
        sites = self.visible_sites if sites is None else tuple(sites)
        if not isinstance(x, Mapping):
            if len(sites) != 1:
                raise TypeError(
                    f"`{name}` is an array but the model has visible sites "
                    f"{[s.name for s in sites]}; pass a dict keyed by site name."
                )
            x = {sites[0].name: x}
        missing = [s.name for s in sites if s.name not in x]
        extra = sorted(set(x) - {s.name for s in sites})
        if missing or extra:
            raise ValueError(
                f"`{name}` must have the keys {[s.name for s in sites]}; "
                f"missing {missing}, unexpected {extra}."
            )
        if not check:
            return {s.name: jnp.asarray(x[s.name]) for s in sites}
        return {s.name: check_configuration(x[s.name], s, name=name) for s in sites}

    def __repr__(self) -> str:
        sites = ", ".join(
            f"{s.name}{list(s.shape)}{'' if s.name in self.visible_names else ' latent'}"
            for s in self.sites
        )
        return (
            f"{type(self).__name__}(sites=[{sites}], params={list(self.param_names)})"
        )

    @property
    def visible_names(self) -> tuple[str, ...]:
        """Names of the visible sites."""
        return tuple(s.name for s in self.visible_sites)


def _check_shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(shape, int | np.integer | float):
        dims = (shape,)
    else:
        try:
            dims = tuple(shape)
        except TypeError:
            dims = (shape,)
    if not dims or any(
        isinstance(d, bool) or not isinstance(d, int | np.integer) or d < 1
        for d in dims
    ):
        raise ValueError(
            f"`shape` must be a positive integer or a tuple of positive integers; "
            f"got {shape!r}."
        )
    return tuple(int(d) for d in dims)


def _check_domain(domain: Sequence[float] | None) -> tuple | None:
    if domain is None:
        return None
    values = tuple(domain)
    if len(values) < 2 or len(set(values)) != len(values):
        raise ValueError(
            f"`domain` must list at least two distinct values, for example (0.0, 1.0); "
            f"got {domain!r}."
        )
    if not all(np.isfinite(v) for v in values):
        raise ValueError(f"`domain` values must be finite; got {domain!r}.")
    return values


def _check_energy_output(model: "EnergyModel", site: Site) -> None:
    """Evaluate the energy's output shape once, on two abstract configurations."""
    dtype = jnp.int32 if site.is_categorical else jnp.result_type(float)
    x = {site.name: jax.ShapeDtypeStruct((2,) + site.shape, dtype)}
    try:
        out = jax.eval_shape(model.joint_energy, model.init_params(), x)
    except Exception as error:
        raise ValueError(
            f"`energy_fn` failed on a configuration of shape {site.shape} with the "
            f"given `init_params`: {error}"
        ) from error
    if getattr(out, "shape", None) != (2,):
        raise ValueError(
            f"`energy_fn` must return one scalar energy per configuration; on a batch "
            f"of 2 configurations it returned shape {getattr(out, 'shape', out)}. With "
            "`batched=True` it must return shape (batch,)."
        )


def _site_domain(name: str, support: Any) -> tuple | None:
    """Return the per-element domain of a NumPyro support constraint."""
    while isinstance(support, constraints.independent):
        support = support.base_constraint
    domain = getattr(support, "domain", None)
    if domain is not None:
        return tuple(domain)
    if support is constraints.boolean:
        return (0.0, 1.0)
    if isinstance(support, constraints.integer_interval):
        low, high = int(support.lower_bound), int(support.upper_bound)
        if low != 0:
            raise NotImplementedError(
                f"sample site `{name}` has integer support [{low}, {high}]; categorical "
                "sites must take values 0, ..., q - 1."
            )
        return tuple(range(high + 1))
    if support.is_discrete:
        raise NotImplementedError(
            f"sample site `{name}` has the unbounded discrete support {support}; "
            "discrete sites must be boolean or a finite integer interval."
        )
    return None


def _inspect_numpyro_model(
    model, model_args, model_kwargs, rng_key, *, return_supports=False
):
    """Trace ``model`` once to find its param sites and unobserved sample sites."""

    def placeholder_value(site):
        # Sample sites get zeros so that distributions without a sampler, such
        # as ImproperUniform, can be traced.
        if site["type"] == "sample" and not site["is_observed"]:
            domain = _site_domain(site["name"], site["fn"].support)
            categorical = domain is not None and isinstance(domain[0], int)
            return jnp.zeros(site["fn"].shape(), jnp.int32 if categorical else float)
        return None

    seeded = handlers.seed(model, rng_key)
    substituted = handlers.substitute(seeded, substitute_fn=placeholder_value)
    trace = handlers.trace(substituted).get_trace(*model_args, **model_kwargs)

    init_params, transforms, sites, supports = {}, {}, [], {}
    for name, site in trace.items():
        if site["type"] == "param":
            constraint = site["kwargs"].get("constraint", constraints.real)
            init_params[name] = site["value"]
            transforms[name] = biject_to(constraint)
        elif site["type"] == "sample" and not site["is_observed"]:
            shape = tuple(site["fn"].shape())
            sites.append(Site(name, shape, _site_domain(name, site["fn"].support)))
            supports[name] = site["fn"].support
    if not sites:
        raise ValueError(
            "the NumPyro model has no unobserved sample site; declare the random "
            "variables x with numpyro.sample and leave them unobserved."
        )
    if return_supports:
        return init_params, transforms, sites, supports
    return init_params, transforms, sites
