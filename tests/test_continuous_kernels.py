"""Exactness and mechanics of the continuous kernels (HMC, NUTS, MALA, Langevin).

Stationarity tests start 4000 chains from exact samples of the target and run
a few transitions at fixed parameters. A Kolmogorov–Smirnov test of each
coordinate at significance 1e-3 / d (Bonferroni) then fails for an exact
kernel with probability below 1e-3 over seeds. The seeds are fixed.
"""

import arviz_base
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.distributions import biject_to, constraints
from numpyro.infer import MCMC
from scipy import stats

from numpyro_ebm.kernels.hmc import (
    EnergyHMC,
    EnergyNUTS,
    adapted_step_size,
    chain_inverse_mass_matrix,
    hmc,
    nuts,
)
from numpyro_ebm.kernels.langevin import EnergyMALA, langevin, mala
from numpyro_ebm.kernels.replay import replay
from numpyro_ebm.models import EnergyModel, Site
from numpyro_ebm.models.gaussian import GaussianEnergy, gaussian_parameters

SIGNIFICANCE = 1e-3
NUM_CHAINS = 4000
DIM = 3
MEAN = np.array([1.0, -2.0, 0.5])
COVARIANCE = np.array([[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]])


@pytest.fixture(scope="module")
def gaussian():
    model = GaussianEnergy(DIM)
    return model, gaussian_parameters(model, MEAN, COVARIANCE)


def exact_gaussian_samples(count, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.multivariate_normal(MEAN, COVARIANCE, size=count), float)


def run_chains(kernel, params, position, num_steps, seed=0, adapt=False):
    count = jax.tree.leaves(position)[0].shape[0]
    key_init, key_run = jax.random.split(jax.random.key(seed))
    states = jax.vmap(kernel.init, (0, 0, None))(
        jax.random.split(key_init, count), position, params
    )

    @jax.jit
    def run(states, key):
        def body(states, key):
            keys = jax.random.split(key, count)
            states, info = jax.vmap(kernel.step, (0, 0, None))(keys, states, params)
            if adapt:
                states = kernel.adapt(states, info)
            return states, info

        return jax.lax.scan(body, states, jax.random.split(key, num_steps))

    return run(states, key_run)


def gaussian_ks_pvalues(x):
    x = np.asarray(x)
    scales = np.sqrt(np.diag(COVARIANCE))
    return [
        stats.kstest(x[:, i], stats.norm(MEAN[i], scales[i]).cdf).pvalue
        for i in range(DIM)
    ]


KERNELS = {
    "hmc": lambda model: hmc(model, step_size=0.4, adaptation_rate=0.0),
    "nuts": lambda model: nuts(model, step_size=0.4, max_tree_depth=5),
    "mala": lambda model: mala(model, step_size=0.3),
}


@pytest.mark.parametrize(
    "name", ["hmc", pytest.param("nuts", marks=pytest.mark.slow), "mala"]
)
def test_kernel_stationarity_gaussian(name, gaussian):
    model, params = gaussian
    kernel = KERNELS[name](model)
    start = {"x": exact_gaussian_samples(NUM_CHAINS)}
    states, info = run_chains(kernel, params, start, num_steps=5)
    assert min(gaussian_ks_pvalues(states.position["x"])) > SIGNIFICANCE / DIM
    before = float(jnp.mean(info.acceptance_rate[-1]))
    assert before > 0.5

    # The potential cached by a kernel is recomputed at the new θ, so a small
    # change of θ keeps the acceptance high. A transition that reused the
    # potential computed under the old θ would compare energies of two models.
    shifted = gaussian_parameters(model, MEAN + 1.0, COVARIANCE)
    keys = jax.random.split(jax.random.key(5), NUM_CHAINS)
    step = jax.jit(jax.vmap(kernel.step, (0, 0, None)))
    _, shifted_info = step(keys, states, shifted)
    assert float(jnp.mean(shifted_info.acceptance_rate)) > 0.8 * before


def test_stationarity_test_has_power(gaussian):
    """Unadjusted Langevin with a large step is biased, and the KS test detects it."""
    model, params = gaussian
    kernel = langevin(model, step_size=0.8)
    start = {"x": exact_gaussian_samples(NUM_CHAINS)}
    states, _ = run_chains(kernel, params, start, num_steps=30)
    assert min(gaussian_ks_pvalues(states.position["x"])) < SIGNIFICANCE / DIM


def standard_normal_model(dim=1):
    return EnergyModel.from_energy_fn(
        lambda p, x: 0.5 * jnp.sum(x**2), {}, shape=dim, domain=None
    )


@pytest.mark.parametrize("step_size", [0.2, 0.8])
def test_langevin_variance_matches_discretisation(step_size):
    """ULA on N(0, 1) has stationary variance 1 / (1 − ε/4) when σ² = ε."""
    model = standard_normal_model()
    kernel = langevin(model, step_size=step_size)
    states, _ = run_chains(kernel, {}, {"x": jnp.zeros((NUM_CHAINS, 1))}, 200)
    variance = float(jnp.var(states.position["x"]))
    expected = 1.0 / (1.0 - step_size / 4.0)
    # The sample variance of 4000 normal draws has relative standard error 2.2 %.
    assert abs(variance / expected - 1.0) < 0.1


def test_langevin_smaller_noise_samples_colder():
    """With σ² = ε/4 the stationary variance of ULA on N(0, 1) is about 1/4."""
    model = standard_normal_model()
    kernel = langevin(model, step_size=0.1, noise_scale=np.sqrt(0.1 / 4))
    states, _ = run_chains(kernel, {}, {"x": jnp.zeros((NUM_CHAINS, 1))}, 300)
    variance = float(jnp.var(states.position["x"]))
    expected = 0.25 / (1.0 - 0.1 / 4.0)
    assert abs(variance / expected - 1.0) < 0.1


def exponential_model(rate):
    def model():
        rates = numpyro.param(
            "rate", jnp.asarray(rate), constraint=constraints.positive
        )
        x = numpyro.sample(
            "x", dist.ImproperUniform(constraints.positive, (), (len(rate),))
        )
        numpyro.factor("neg_energy", -jnp.dot(rates, x))

    return EnergyModel.from_numpyro(model)


POSITIVE = {"x": biject_to(constraints.positive)}


@pytest.mark.parametrize(
    "make_kernel",
    [hmc, pytest.param(mala, marks=pytest.mark.slow)],
    ids=["hmc", "mala"],
)
def test_positive_support_samples_exponential(make_kernel):
    rates = np.array([0.5, 2.0])
    model = exponential_model(rates)
    kernel = make_kernel(model, step_size=0.3, transforms=POSITIVE)
    start = {"x": jnp.ones((NUM_CHAINS, 2))}
    states, _ = run_chains(kernel, model.init_params(), start, num_steps=60)
    x = np.asarray(states.position["x"])
    assert np.all(x > 0)
    for i, rate in enumerate(rates):
        pvalue = stats.kstest(x[:, i], stats.expon(scale=1 / rate).cdf).pvalue
        assert pvalue > SIGNIFICANCE / 2


def test_positive_support_invalid_start_replaced():
    """Positions outside the support start from a uniform draw in (−2, 2) of z."""
    model = exponential_model(np.array([1.0]))
    kernel = hmc(model, transforms=POSITIVE)
    state = kernel.init(
        jax.random.key(0), {"x": jnp.array([-1.0])}, model.init_params()
    )
    assert bool(jnp.all(jnp.isfinite(state.z["x"])))
    assert float(state.position["x"][0]) > 0


def test_missing_transform_rejected():
    """A potential with a log-Jacobian that the kernel does not know is caught."""
    site = Site("x", (2,), None)

    def joint_energy(params, x):
        return jnp.sum(x["x"], axis=-1)

    def potential(params, z):
        return jnp.sum(jnp.exp(z["x"])) - jnp.sum(z["x"])

    model = EnergyModel(joint_energy, {}, [site], potential_fn=potential)
    with pytest.raises(ValueError, match="transforms"):
        hmc(model)
    hmc(model, transforms=POSITIVE)


def test_unknown_transform_site_rejected():
    with pytest.raises(ValueError, match="`transforms` names the sites"):
        hmc(standard_normal_model(), transforms={"y": biject_to(constraints.positive)})


def test_discrete_model_rejected():
    model = EnergyModel.from_energy_fn(lambda p, x: jnp.sum(x), {}, shape=2)
    with pytest.raises(TypeError, match="mixed_gibbs"):
        hmc(model)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"step_size": 0.0}, "step_size"),
        ({"step_size": float("nan")}, "step_size"),
        ({"num_steps": 0}, "num_steps"),
        ({"target_acceptance": 1.0}, "target_acceptance"),
        ({"adaptation_rate": -0.1}, "adaptation_rate"),
        ({"step_size_jitter": 1.0}, "step_size_jitter"),
    ],
)
def test_bad_hmc_arguments_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hmc(standard_normal_model(), **kwargs)


def test_bad_langevin_arguments_rejected():
    model = standard_normal_model()
    with pytest.raises(ValueError, match="noise_scale"):
        langevin(model, step_size=0.1, noise_scale=-1.0)
    with pytest.raises(ValueError, match="max_tree_depth"):
        nuts(model, max_tree_depth=0)
    with pytest.raises(ValueError, match="target_acceptance"):
        mala(model, target_acceptance=0.0)


@pytest.mark.parametrize("name", ["hmc", "mala"])
def test_kernel_jitted_matches_eager(name, gaussian):
    model, params = gaussian
    kernel = KERNELS[name](model)
    state = kernel.init(jax.random.key(0), {"x": jnp.zeros(DIM)}, params)
    eager, eager_info = kernel.step(jax.random.key(1), state, params)
    jitted, jitted_info = jax.jit(kernel.step)(jax.random.key(1), state, params)
    np.testing.assert_allclose(eager.position["x"], jitted.position["x"], rtol=1e-5)
    np.testing.assert_allclose(
        eager_info.acceptance_rate, jitted_info.acceptance_rate, rtol=1e-4
    )


@pytest.mark.parametrize("name", ["hmc", pytest.param("mala", marks=pytest.mark.slow)])
def test_kernel_sees_changed_params(name):
    """The same jitted step follows θ passed at call time, without recompiling."""
    model = GaussianEnergy(2)
    kernel = KERNELS[name](model)
    near = gaussian_parameters(model, jnp.array([5.0, 5.0]), 0.1 * jnp.eye(2))
    far = gaussian_parameters(model, jnp.array([-5.0, -5.0]), 0.1 * jnp.eye(2))
    step = jax.jit(jax.vmap(kernel.step, (0, 0, None)))
    keys = jax.random.split(jax.random.key(0), 200)
    states = jax.vmap(kernel.init, (0, 0, None))(keys, {"x": jnp.zeros((200, 2))}, near)
    for params, target in ((near, 5.0), (far, -5.0)):
        for i in range(40):
            states, _ = step(jax.random.split(jax.random.key(i), 200), states, params)
        assert abs(float(jnp.mean(states.position["x"])) - target) < 0.2
    assert step._cache_size() == 1


def test_hmc_info_types_are_fixed():
    """Info and state types do not change between transitions (no recompilation)."""
    model = standard_normal_model(2)
    for kernel in (hmc(model), nuts(model, max_tree_depth=3)):
        state = kernel.init(jax.random.key(0), {"x": jnp.zeros(2)}, {})
        step = jax.jit(kernel.step)
        first, info = step(jax.random.key(1), state, {})
        second, _ = step(jax.random.key(2), first, {})
        assert info.num_steps.dtype == jnp.int32
        assert jax.tree.structure(first) == jax.tree.structure(state)
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(second), strict=True):
            assert a.dtype == b.dtype
        assert step._cache_size() == 1


def test_step_size_controller_moves_towards_target():
    step_size = jnp.full(8, 0.1)
    high = adapted_step_size(step_size, jnp.full(8, 1.0), target=0.8, rate=0.5)
    low = adapted_step_size(step_size, jnp.full(8, 0.2), target=0.8, rate=0.5)
    fixed = adapted_step_size(step_size, jnp.full(8, 0.2), target=0.8, rate=0.0)
    np.testing.assert_allclose(high, 0.1 * np.exp(0.1), rtol=1e-6)
    np.testing.assert_allclose(low, 0.1 * np.exp(-0.3), rtol=1e-6)
    np.testing.assert_allclose(fixed, 0.1, rtol=1e-6)
    nan = adapted_step_size(step_size, jnp.full(8, jnp.nan), target=0.8, rate=0.5)
    np.testing.assert_allclose(nan, 0.1 * np.exp(-0.4), rtol=1e-6)


@pytest.mark.parametrize(
    ("name", "target"),
    [pytest.param("hmc", 0.8, marks=pytest.mark.slow), ("mala", 0.574)],
)
def test_adapt_reaches_target_acceptance(name, target, gaussian):
    model, params = gaussian
    kernel = (hmc if name == "hmc" else mala)(model, step_size=0.01)
    start = {"x": exact_gaussian_samples(300)}
    _, info = run_chains(kernel, params, start, num_steps=80, adapt=True)
    final = float(jnp.mean(info.acceptance_rate[-20:]))
    assert abs(final - target) < 0.08
    assert float(info.step_size[-1].mean()) > 0.1


def test_mass_matrix_adaptation_learns_variances():
    scales = np.array([10.0, 0.1])
    model = GaussianEnergy(2)
    params = gaussian_parameters(model, jnp.zeros(2), jnp.diag(scales**2))
    kernel = hmc(model, step_size=0.05, adapt_mass_matrix=True)
    rng = np.random.default_rng(0)
    start = {"x": jnp.asarray(rng.normal(size=(1000, 2)) * scales, float)}
    states, info = run_chains(kernel, params, start, num_steps=60, adapt=True)
    np.testing.assert_allclose(states.inverse_mass_matrix[0], scales**2, rtol=0.15)
    pvalues = [
        stats.kstest(np.asarray(states.position["x"][:, i]) / s, "norm").pvalue
        for i, s in enumerate(scales)
    ]
    assert min(pvalues) > SIGNIFICANCE / 2
    # With a unit mass matrix the step size would stay near 0.1 (the smallest scale).
    assert float(info.step_size[-1].mean()) > 0.5


def test_chain_inverse_mass_matrix_shrinks_to_floor():
    z = {"x": jnp.asarray(np.random.default_rng(0).normal(size=(95, 3)) * 2.0)}
    variance = np.var(np.asarray(z["x"]), axis=0)
    expected = 95 / 100 * variance + 1e-3 * 5 / 100
    np.testing.assert_allclose(chain_inverse_mass_matrix(z), expected, rtol=1e-5)


@pytest.mark.parametrize(
    "make_kernel",
    [
        lambda m: EnergyHMC(m, step_size=0.5),
        pytest.param(
            lambda m: EnergyNUTS(m, step_size=0.5, max_tree_depth=4),
            marks=pytest.mark.slow,
        ),
        lambda m: EnergyMALA(m, step_size=0.5),
    ],
    ids=["hmc", "nuts", "mala"],
)
def test_kernel_runs_under_numpyro_mcmc(make_kernel, gaussian):
    model, params = gaussian
    mcmc = MCMC(
        make_kernel(model),
        num_warmup=20,
        num_samples=100,
        num_chains=4,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.key(0), params, init_params={"x": jnp.zeros((4, DIM))})
    samples = mcmc.get_samples(group_by_chain=True)
    assert samples["x"].shape == (4, 100, DIM)
    assert np.all(np.isfinite(samples["x"]))
    tree = arviz_base.from_numpyro(mcmc)
    assert tree.posterior["x"].dims == ("chain", "draw", "x_dim_0")
    assert tree.posterior["x"].shape == (4, 100, DIM)


def noise_init():
    return {"x": dist.Uniform(-20.0, -10.0).expand([2]).to_event(1)}


def test_replay_restarts_marked_chains_from_noise():
    model = standard_normal_model(2)
    kernel = replay(langevin(model, step_size=1e-6, noise_scale=0.0), noise_init(), 0.3)
    count = 2000
    keys = jax.random.split(jax.random.key(0), count)
    states = jax.vmap(kernel.init, (0, 0, None))(keys, {"x": jnp.zeros((count, 2))}, {})
    states, info = jax.vmap(kernel.step, (0, 0, None))(keys, states, {})
    assert not bool(jnp.any(info.restarted))
    assert set(info._fields) == {"step_size", "gradient_norm", "restarted"}
    states = kernel.adapt(states, info)
    fraction = float(jnp.mean(states.restart))
    # Binomial(2000, 0.3): standard deviation 0.010.
    assert abs(fraction - 0.3) < 0.05
    steps = jax.random.split(jax.random.key(1), count)
    new, info = jax.vmap(kernel.step, (0, 0, None))(steps, states, {})
    restarted = np.asarray(states.restart)
    x = np.asarray(new.position["x"])
    np.testing.assert_array_equal(np.asarray(info.restarted), restarted)
    assert np.all((x[restarted] < -9.9) & (x[restarted] > -20.1))
    np.testing.assert_allclose(x[~restarted], 0.0, atol=1e-4)
    assert not bool(jnp.any(new.restart))


def test_replay_rejects_bad_arguments():
    kernel = langevin(standard_normal_model(), step_size=0.1)
    with pytest.raises(ValueError, match="restart_probability"):
        replay(kernel, noise_init(), 1.5)
    with pytest.raises(TypeError, match="dict keyed by site name"):
        replay(kernel, dist.Normal(0.0, 1.0))
    with pytest.raises(TypeError, match="init_fn"):
        replay(kernel, 3.0)
