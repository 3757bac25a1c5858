"""Closed forms and samplers of the Gaussian, Gaussian–Bernoulli RBM and neural models.

The Gaussian–Bernoulli RBM's visible marginal is a mixture of 2^m Gaussians
whose weights come from enumerating the hidden states, so each visible unit
has an exact mixture CDF. The sampler tests apply a Kolmogorov–Smirnov test to
each visible unit and Pearson's chi-square test to the hidden states. Each
runs at significance 1e-3 divided by the number of tests (Bonferroni), so an
exact kernel fails a given test with probability below 1e-3 over seeds. The
seeds are fixed.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from numpyro_ebm.kernels.mixed import (
    GaussianBlockGibbs,
    gaussian_block_gibbs,
    mixed_gibbs,
)
from numpyro_ebm.models import EnergyModel
from numpyro_ebm.models.enumeration import decode_configurations
from numpyro_ebm.models.gaussian import (
    GaussianBernoulliRBM,
    GaussianEnergy,
    gaussian_bernoulli_rbm_model,
    gaussian_parameters,
)
from numpyro_ebm.models.neural import NeuralEnergy, init_mlp, mlp_energy

SIGNIFICANCE = 1e-3
NUM_CHAINS = 4000
NUM_VISIBLE, NUM_HIDDEN = 3, 2


def rbm_parameters(rbm, seed=1):
    rng = np.random.default_rng(seed)
    shape = (rbm.num_visible, rbm.num_hidden)
    return rbm.unconstrain(
        {
            "weights": jnp.asarray(1.5 * rng.normal(size=shape), float),
            "visible_bias": jnp.asarray(0.5 * rng.normal(size=shape[0]), float),
            "hidden_bias": jnp.asarray(0.5 * rng.normal(size=shape[1]), float),
            "visible_variance": jnp.asarray(
                rng.uniform(0.3, 1.5, size=shape[0]), float
            ),
        }
    )


@pytest.fixture(scope="module")
def tiny_gaussian_rbm():
    rbm = GaussianBernoulliRBM(NUM_VISIBLE, NUM_HIDDEN)
    return rbm, rbm_parameters(rbm)


def hidden_states(rbm):
    return decode_configurations(rbm.latent_sites, jnp.arange(2**rbm.num_hidden))["h"]


def exact_mixture(rbm, params):
    """Weights p(h), component means b + W h and scales σ, in float64."""
    hidden = hidden_states(rbm)
    log_weights = -rbm.hidden_free_energy(params, hidden) - rbm.log_partition(params)
    weights = np.exp(np.asarray(log_weights, np.float64))
    weights /= weights.sum()
    means = np.asarray(rbm.visible_mean(params, hidden), np.float64)
    scales = np.sqrt(np.asarray(rbm.visible_variance(params), np.float64))
    return weights, means, scales


def goodness_of_fit_pvalues(rbm, params, visible, hidden):
    """KS p-value of each visible unit and chi-square p-value of the hidden states."""
    weights, means, scales = exact_mixture(rbm, params)
    visible = np.asarray(visible)
    pvalues = []
    for i in range(rbm.num_visible):

        def cdf(x, i=i):
            z = (np.asarray(x)[:, None] - means[None, :, i]) / scales[i]
            return np.sum(weights[None] * stats.norm.cdf(z), axis=1)

        pvalues.append(stats.kstest(visible[:, i], cdf).pvalue)
    codes = np.asarray(hidden).astype(int) @ (2 ** np.arange(rbm.num_hidden)[::-1])
    counts = np.bincount(codes, minlength=weights.size)
    pvalues.append(stats.chisquare(counts, weights * codes.size).pvalue)
    return pvalues


def run_chains(kernel, params, start, num_steps, seed=0):
    key_init, key_run = jax.random.split(jax.random.key(seed))
    states = jax.vmap(kernel.init, (0, 0, None))(
        jax.random.split(key_init, NUM_CHAINS), start, params
    )

    @jax.jit
    def run(states, key):
        def body(states, key):
            keys = jax.random.split(key, NUM_CHAINS)
            return jax.vmap(kernel.step, (0, 0, None))(keys, states, params)[0], None

        return jax.lax.scan(body, states, jax.random.split(key, num_steps))[0]

    return run(states, key_run)


def hidden_of(states):
    return states.hidden if hasattr(states, "hidden") else states.discrete["h"]


def generic_rbm_model():
    """The same RBM built by ``EnergyModel.from_numpyro``, with no closed forms."""
    return EnergyModel.from_numpyro(
        gaussian_bernoulli_rbm_model, NUM_VISIBLE, NUM_HIDDEN, visible=["v"]
    )


GAUSSIAN_RBM_KERNELS = {
    "block": lambda rbm: gaussian_block_gibbs(rbm),
    "mixed_mala": lambda rbm: mixed_gibbs(rbm, "mala", step_size=0.3),
    "mixed_hmc": lambda rbm: mixed_gibbs(rbm, "hmc", step_size=0.3),
    "mixed_nuts": lambda rbm: mixed_gibbs(rbm, "nuts", step_size=0.3),
}


@pytest.mark.parametrize(
    "name",
    [
        "block",
        "mixed_mala",
        pytest.param("mixed_hmc", marks=pytest.mark.slow),
        pytest.param("mixed_nuts", marks=pytest.mark.slow),
    ],
)
def test_gaussian_rbm_kernel_goodness_of_fit(name, tiny_gaussian_rbm):
    rbm, params = tiny_gaussian_rbm
    start = {"v": jnp.zeros((NUM_CHAINS, NUM_VISIBLE))}
    states = run_chains(GAUSSIAN_RBM_KERNELS[name](rbm), params, start, 200)
    pvalues = goodness_of_fit_pvalues(
        rbm, params, states.position["v"], hidden_of(states)
    )
    assert min(pvalues) > SIGNIFICANCE / len(pvalues)


@pytest.mark.slow
def test_single_site_discrete_sweep_goodness_of_fit(tiny_gaussian_rbm):
    """A model without closed forms gets energy-only Gibbs on h; same target."""
    rbm, params = tiny_gaussian_rbm
    kernel = mixed_gibbs(generic_rbm_model(), "hmc", step_size=0.3)
    start = {"v": jnp.zeros((NUM_CHAINS, NUM_VISIBLE))}
    states = run_chains(kernel, params, start, 200)
    pvalues = goodness_of_fit_pvalues(
        rbm, params, states.position["v"], hidden_of(states)
    )
    assert min(pvalues) > SIGNIFICANCE / len(pvalues)


@pytest.mark.parametrize("name", ["block", "mixed_hmc"])
def test_gaussian_rbm_kernel_stationarity(name, tiny_gaussian_rbm):
    rbm, params = tiny_gaussian_rbm
    start = {"v": rbm.sample(jax.random.key(5), params, NUM_CHAINS)}
    states = run_chains(GAUSSIAN_RBM_KERNELS[name](rbm), params, start, 3, seed=2)
    pvalues = goodness_of_fit_pvalues(
        rbm, params, states.position["v"], hidden_of(states)
    )
    assert min(pvalues) > SIGNIFICANCE / len(pvalues)


def test_goodness_of_fit_detects_wrong_parameters(tiny_gaussian_rbm):
    rbm, params = tiny_gaussian_rbm
    other = rbm_parameters(rbm, seed=7)
    start = {"v": jnp.zeros((NUM_CHAINS, NUM_VISIBLE))}
    states = run_chains(gaussian_block_gibbs(rbm), other, start, 50)
    pvalues = goodness_of_fit_pvalues(
        rbm, params, states.position["v"], hidden_of(states)
    )
    assert min(pvalues) < SIGNIFICANCE / len(pvalues)


def test_exact_samples_match_mixture(tiny_gaussian_rbm):
    rbm, params = tiny_gaussian_rbm
    visible = rbm.sample(jax.random.key(0), params, NUM_CHAINS)
    weights, means, scales = exact_mixture(rbm, params)
    mean = weights @ means
    standard_error = np.sqrt(np.asarray(jnp.var(visible, axis=0)) / NUM_CHAINS)
    np.testing.assert_array_less(
        np.abs(visible.mean(axis=0) - mean), 4.5 * standard_error
    )


def test_gaussian_rbm_free_energy_matches_enumeration(tiny_gaussian_rbm):
    rbm, params = tiny_gaussian_rbm
    v = jnp.asarray(np.random.default_rng(0).normal(size=(6, NUM_VISIBLE)), float)
    enumerated = EnergyModel.marginal_energy(rbm, params, {"v": v})
    np.testing.assert_allclose(rbm.free_energy(params, v), enumerated, rtol=1e-5)
    np.testing.assert_allclose(rbm.energy(params, v), enumerated, rtol=1e-5)


def test_gaussian_rbm_log_partition_matches_integration():
    rbm = GaussianBernoulliRBM(1, 2, init_scale=1.0, rng_key=jax.random.key(3))
    params = rbm.init_params()

    def density(x):
        return float(jnp.exp(-rbm.free_energy(params, jnp.array([[x]]))[0]))

    integral, _ = integrate.quad(density, -40.0, 40.0)
    assert float(rbm.log_partition(params)) == pytest.approx(np.log(integral), rel=1e-4)


def test_gaussian_rbm_numpyro_model_matches_closed_form(tiny_gaussian_rbm):
    rbm, params = tiny_gaussian_rbm
    generic = generic_rbm_model()
    rng = np.random.default_rng(1)
    config = {
        "v": jnp.asarray(rng.normal(size=(4, NUM_VISIBLE)), float),
        "h": jnp.asarray(rng.integers(0, 2, size=(4, NUM_HIDDEN)), float),
    }
    np.testing.assert_allclose(
        generic.joint_energy(params, config),
        rbm.joint_energy(params, config),
        rtol=1e-5,
    )


def test_gaussian_rbm_variances_positive_for_any_parameters(tiny_gaussian_rbm):
    rbm, params = tiny_gaussian_rbm
    for value in (-50.0, 0.0, 20.0):
        extreme = dict(params, visible_variance=jnp.full(NUM_VISIBLE, value))
        assert bool(jnp.all(rbm.visible_variance(extreme) > 0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_visible": 0}, "num_visible"),
        ({"num_hidden": 1.5}, "num_hidden"),
        ({"visible_bias": np.zeros(2)}, "visible_bias"),
        ({"visible_variance": np.array([1.0, -1.0, 1.0])}, "visible_variance"),
    ],
)
def test_gaussian_rbm_rejects_bad_arguments(kwargs, match):
    arguments = {"num_visible": 3, "num_hidden": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        GaussianBernoulliRBM(**arguments)


def test_gaussian_block_gibbs_rejects_other_models():
    with pytest.raises(TypeError, match="visible_mean"):
        gaussian_block_gibbs(GaussianEnergy(2))


def test_mixed_gibbs_rejects_models_without_both_kinds():
    with pytest.raises(TypeError, match="discrete and continuous"):
        mixed_gibbs(GaussianEnergy(2))
    with pytest.raises(ValueError, match="continuous"):
        mixed_gibbs(GaussianBernoulliRBM(2, 1), "langevin")


def test_gaussian_block_gibbs_runs_under_numpyro_mcmc(tiny_gaussian_rbm):
    import arviz_base
    from numpyro.infer import MCMC

    rbm, params = tiny_gaussian_rbm
    mcmc = MCMC(
        GaussianBlockGibbs(rbm),
        num_warmup=10,
        num_samples=50,
        num_chains=4,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.key(0), params, init_params={"v": jnp.zeros((4, NUM_VISIBLE))})
    tree = arviz_base.from_numpyro(mcmc)
    assert tree.posterior["v"].shape == (4, 50, NUM_VISIBLE)


# -- Gaussian energy -------------------------------------------------------------------


def test_gaussian_energy_closed_forms():
    covariance = np.array([[2.0, 0.5], [0.5, 1.0]])
    mean = np.array([1.0, -1.0])
    model = GaussianEnergy(2)
    params = gaussian_parameters(model, mean, covariance)
    np.testing.assert_allclose(model.mean(params), mean, rtol=1e-6)
    np.testing.assert_allclose(model.covariance(params), covariance, rtol=1e-5)
    np.testing.assert_allclose(
        model.precision(params), np.linalg.inv(covariance), rtol=1e-5
    )
    x = jnp.array([[0.3, 0.2], [2.0, -1.5]])
    expected = stats.multivariate_normal(mean, covariance).logpdf(np.asarray(x))
    log_density = -model.energy(params, x) - model.log_partition(params)
    np.testing.assert_allclose(log_density, expected, rtol=1e-5)


def test_gaussian_energy_numpyro_potential_matches_closed_form():
    model = GaussianEnergy(3, loc=np.ones(3))
    params = model.init_params()
    z = {"x": jnp.array([0.5, -1.0, 2.0])}
    np.testing.assert_allclose(
        model.potential_fn(params)(z), model.energy(params, z["x"][None])[0], rtol=1e-6
    )


def test_gaussian_energy_rejects_bad_arguments():
    with pytest.raises(ValueError, match="dim"):
        GaussianEnergy(0)
    with pytest.raises(ValueError, match="loc"):
        GaussianEnergy(2, loc=np.zeros(3))
    with pytest.raises(ValueError, match="positive"):
        GaussianEnergy(2, precision_tril=np.array([[1.0, 0.0], [0.0, -1.0]]))


# -- neural energy ---------------------------------------------------------------------


def test_neural_energy_flattens_pytree_parameters():
    layers = init_mlp(jax.random.key(0), [2, 8, 8, 1])
    tree = {"layers": layers, "temperature": jnp.ones(())}

    def energy(params, x):
        return mlp_energy(params["layers"], x) / params["temperature"]

    model = NeuralEnergy(energy, tree, shape=2)
    assert set(model.param_names) == {
        "layers/0/0",
        "layers/0/1",
        "layers/1/0",
        "layers/1/1",
        "layers/2/0",
        "layers/2/1",
        "temperature",
    }
    params = model.init_params()
    roundtrip = model.unflatten(params)
    assert jax.tree.structure(roundtrip) == jax.tree.structure(tree)
    assert model.flatten(roundtrip).keys() == params.keys()
    x = jnp.array([[0.5, -0.5]])
    np.testing.assert_allclose(
        model.energy(params, x), energy(tree, x[0])[None], rtol=1e-6
    )
    grads = jax.grad(lambda p: jnp.sum(model.energy(p, x)))(params)
    assert grads.keys() == params.keys()


def test_neural_energy_rejects_empty_parameters():
    with pytest.raises(ValueError, match="no arrays"):
        NeuralEnergy(lambda p, x: jnp.sum(x), [], shape=2)
    with pytest.raises(ValueError, match="layer_sizes"):
        init_mlp(jax.random.key(0), [2])


def test_mlp_base_measure_confines_energy():
    layers = init_mlp(jax.random.key(0), [2, 4, 1])
    far = jnp.array([100.0, 0.0])
    assert float(mlp_energy(layers, far, base_scale=1.0)) > 4000.0
