import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
from numpyro.distributions import constraints

from numpyro_ebm import EnergyModel, MaximumLikelihood


def exponential_model(dim):
    rate = numpyro.param("rate", jnp.ones(dim), constraint=constraints.positive)
    x = numpyro.sample("x", dist.ImproperUniform(constraints.positive, (), (dim,)))
    numpyro.factor("neg_energy", -jnp.sum(rate * x))


def test_numpyro_positive_site_trains_with_default_kernel():
    """A NumPyro model with a positive site gets HMC in unconstrained space by default.

    The maximum-likelihood rates of independent exponentials are 1 / sample mean.
    With 512 chains the relative Monte Carlo error of the fantasy mean is
    1/√512 ≈ 4.4 % per update, and the updates average it out over 240 steps,
    so 5 % is a loose bound on the fitted rates.
    """
    model = EnergyModel.from_numpyro(exponential_model, 2)
    assert set(model.site_transforms) == {"x"}
    data = np.random.default_rng(0).exponential([0.5, 2.0], size=(4000, 2))
    learner = MaximumLikelihood(model, optax.adam(0.05), num_chains=512, num_sweeps=2)
    result = learner.run(
        jax.random.key(0), data, num_epochs=60, batch_size=1000, progress_bar=False
    )
    rates = model.constrain(result.params)["rate"]
    np.testing.assert_allclose(rates, 1.0 / data.mean(axis=0), rtol=0.05)
    assert np.all(result.history.kernel_info["acceptance_rate"][-20:] > 0.5)
