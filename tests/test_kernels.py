"""Exactness of the kernels against enumeration of small models.

Each goodness-of-fit test draws independent samples (one per chain, after a
burn-in far longer than the mixing time of these small models) and applies
Pearson's chi-square test at significance 1e-3, so an exact kernel fails a
given test with probability 1e-3 over seeds; the seeds are fixed.
"""

import itertools

import arviz_base
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.distributions import constraints
from numpyro.infer import MCMC

from numpyro_ebm.kernels import BlockGibbs, SiteGibbs, block_gibbs, site_gibbs
from numpyro_ebm.models import BernoulliRBM, EnergyModel

from conftest import (
    all_binary,
    brute_force_visible_probs,
    chi_square_pvalue,
    rbm_params,
    run_chains,
    state_index,
)

SIGNIFICANCE = 1e-3
NUM_CHAINS = 4000


def exact_samples(probs, count, shape, seed=0):
    rng = np.random.default_rng(seed)
    n = int(np.log2(probs.size))
    index = rng.choice(probs.size, size=count, p=probs)
    return jnp.asarray(all_binary(n)[index].reshape((count,) + shape), dtype=float)


@pytest.mark.parametrize(
    "make_kernel", [block_gibbs, site_gibbs], ids=["block", "site"]
)
def test_rbm_kernel_goodness_of_fit(make_kernel, tiny_rbm):
    rbm, params = tiny_rbm
    probs = brute_force_visible_probs(params, 5, 3)
    start = jnp.zeros((NUM_CHAINS, 5))
    states = run_chains(make_kernel(rbm), params, {"v": start}, num_sweeps=50)
    indices = state_index(states.position["v"])
    assert chi_square_pvalue(indices, probs) > SIGNIFICANCE


@pytest.mark.parametrize(
    "make_kernel", [block_gibbs, site_gibbs], ids=["block", "site"]
)
def test_rbm_kernel_stationarity(make_kernel, tiny_rbm):
    rbm, params = tiny_rbm
    probs = brute_force_visible_probs(params, 5, 3)
    start = exact_samples(probs, NUM_CHAINS, (5,))
    states = run_chains(make_kernel(rbm), params, {"v": start}, num_sweeps=3, seed=1)
    indices = state_index(states.position["v"])
    assert chi_square_pvalue(indices, probs) > SIGNIFICANCE
    # Total variation at the Monte Carlo noise floor: E[TV] <= sum sqrt(p (1-p) / N) / 2.
    empirical = np.bincount(indices, minlength=probs.size) / indices.size
    noise_floor = 0.5 * np.sum(np.sqrt(probs * (1 - probs) / indices.size))
    assert 0.5 * np.abs(empirical - probs).sum() < 2 * noise_floor


def test_goodness_of_fit_detects_wrong_parameters(tiny_rbm):
    """The chi-square test has power: samples at other parameters are rejected."""
    rbm, params = tiny_rbm
    other = rbm_params(5, 3, seed=7)
    probs = brute_force_visible_probs(params, 5, 3)
    states = run_chains(block_gibbs(rbm), other, {"v": jnp.zeros((NUM_CHAINS, 5))}, 50)
    assert chi_square_pvalue(state_index(states.position["v"]), probs) < SIGNIFICANCE


def test_block_gibbs_inverse_temperature(tiny_rbm):
    rbm, params = tiny_rbm
    beta = 0.5
    scaled = {k: beta * v for k, v in params.items()}
    probs = brute_force_visible_probs(scaled, 5, 3)
    kernel = block_gibbs(rbm, inverse_temperature=beta)
    states = run_chains(kernel, params, {"v": jnp.zeros((NUM_CHAINS, 5))}, 50)
    assert chi_square_pvalue(state_index(states.position["v"]), probs) > SIGNIFICANCE


def potts_chain(num_sites=3, q=3):
    """Open chain of q-state Potts spins with a coupling and a field on state 0."""

    def model():
        coupling = numpyro.param("coupling", 0.8)
        field = numpyro.param("field", 0.5)
        x = numpyro.sample(
            "x",
            dist.ImproperUniform(
                constraints.integer_interval(0, q - 1), (), (num_sites,)
            ),
        )
        same = jnp.sum(x[1:] == x[:-1])
        numpyro.factor("neg_energy", coupling * same + field * jnp.sum(x == 0))

    return EnergyModel.from_numpyro(model)


def test_site_gibbs_potts_goodness_of_fit():
    model = potts_chain()
    params = model.init_params()
    configs = np.array(list(itertools.product(range(3), repeat=3)))
    energies = np.asarray(model.energy(params, jnp.asarray(configs)), dtype=np.float64)
    probs = np.exp(-(energies - energies.min()))
    probs /= probs.sum()
    start = {"x": jnp.zeros((NUM_CHAINS, 3), dtype=jnp.int32)}
    states = run_chains(site_gibbs(model), params, start, num_sweeps=30)
    indices = state_index(states.position["x"], domain_size=3)
    assert states.position["x"].dtype == jnp.int32
    assert chi_square_pvalue(indices, probs) > SIGNIFICANCE


def test_site_gibbs_spin_goodness_of_fit():
    rng = np.random.default_rng(3)
    couplings = jnp.asarray(np.triu(0.7 * rng.normal(size=(4, 4)), 1), dtype=float)

    def energy(params, s):
        return -(s @ params["couplings"] @ s + params["fields"] @ s)

    init = {
        "couplings": couplings,
        "fields": jnp.asarray(0.3 * rng.normal(size=4), dtype=float),
    }
    model = EnergyModel.from_energy_fn(energy, init, shape=4, domain=(-1.0, 1.0))
    spins = 2 * all_binary(4) - 1
    energies = np.asarray(model.energy(init, jnp.asarray(spins)), dtype=np.float64)
    probs = np.exp(-(energies - energies.min()))
    probs /= probs.sum()
    states = run_chains(site_gibbs(model), init, {"x": -jnp.ones((NUM_CHAINS, 4))}, 100)
    indices = state_index((states.position["x"] + 1) / 2)
    assert chi_square_pvalue(indices, probs) > SIGNIFICANCE


@pytest.mark.parametrize(
    "make_kernel", [block_gibbs, site_gibbs], ids=["block", "site"]
)
def test_kernel_jitted_matches_eager(make_kernel, tiny_rbm):
    rbm, params = tiny_rbm
    kernel = make_kernel(rbm)
    state = kernel.init(jax.random.key(0), {"v": jnp.zeros(5)}, params)
    eager, _ = kernel.step(jax.random.key(1), state, params)
    jitted, _ = jax.jit(kernel.step)(jax.random.key(1), state, params)
    np.testing.assert_array_equal(eager.position["v"], jitted.position["v"])


def test_kernel_sees_changed_params():
    rbm = BernoulliRBM(6, 2)
    kernel = block_gibbs(rbm)
    params = rbm.init_params()
    state = kernel.init(jax.random.key(0), {"v": jnp.zeros(6)}, params)
    step = jax.jit(kernel.step)
    on = dict(params, visible_bias=jnp.full(6, 30.0))
    off = dict(params, visible_bias=jnp.full(6, -30.0))
    np.testing.assert_array_equal(
        step(jax.random.key(1), state, on)[0].position["v"], 1.0
    )
    np.testing.assert_array_equal(
        step(jax.random.key(1), state, off)[0].position["v"], 0.0
    )
    assert step._cache_size() == 1


def test_block_gibbs_rejects_non_bipartite_model():
    model = EnergyModel.from_energy_fn(
        lambda p, x: -p["b"] @ x, {"b": jnp.zeros(3)}, shape=3
    )
    with pytest.raises(TypeError, match="hidden_logits"):
        block_gibbs(model)


def test_site_gibbs_rejects_real_sites():
    model = EnergyModel.from_energy_fn(lambda p, x: x @ x, {}, shape=2, domain=None)
    with pytest.raises(TypeError, match="real-valued"):
        site_gibbs(model)


@pytest.mark.parametrize("kernel_class", [BlockGibbs, SiteGibbs], ids=["block", "site"])
def test_kernel_runs_under_numpyro_mcmc(kernel_class, tiny_rbm):
    rbm, params = tiny_rbm
    mcmc = MCMC(
        kernel_class(rbm),
        num_warmup=20,
        num_samples=100,
        num_chains=4,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.key(0), params, init_params={"v": jnp.zeros((4, 5))})
    samples = mcmc.get_samples(group_by_chain=True)
    assert samples["v"].shape == (4, 100, 5)
    assert set(np.unique(samples["v"])) <= {0.0, 1.0}

    tree = arviz_base.from_numpyro(mcmc)
    assert tree.posterior["v"].dims == ("chain", "draw", "v_dim_0")
    assert tree.posterior["v"].shape == (4, 100, 5)


def test_mcmc_samples_match_exact_marginals(tiny_rbm):
    """Visible marginals from MCMC agree with enumeration within 4.5 standard errors."""
    rbm, params = tiny_rbm
    mcmc = MCMC(
        BlockGibbs(rbm),
        num_warmup=100,
        num_samples=2000,
        num_chains=8,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.key(2), params)
    tree = arviz_base.from_numpyro(mcmc)
    probs = brute_force_visible_probs(params, 5, 3)
    exact = probs @ all_binary(5)
    import arviz_stats

    mean = tree.posterior["v"].mean(("chain", "draw")).values
    mcse = arviz_stats.mcse(tree, var_names=["v"])["v"].values
    assert np.all(np.abs(mean - exact) < 4.5 * mcse)


def test_mcmc_requires_params(tiny_rbm):
    rbm, _ = tiny_rbm
    mcmc = MCMC(BlockGibbs(rbm), num_warmup=1, num_samples=1, progress_bar=False)
    with pytest.raises(ValueError, match="missing parameters"):
        mcmc.run(jax.random.key(0))
