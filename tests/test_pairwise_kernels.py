"""Local-field Gibbs and Gibbs-with-Gradients against exact enumeration.

Goodness-of-fit tests draw one sample per independent chain after a burn-in
longer than the mixing time of these small models. They apply Pearson's
chi-square test at significance 1e-3 (see test_kernels.py), so an exact kernel
fails each test with probability 1e-3 over seeds. The seeds are fixed.
"""

import functools
import itertools

import arviz_base
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer import MCMC

from numpyro_ebm.kernels.gibbs_with_gradients import (
    GibbsWithGradients,
    gibbs_with_gradients,
)
from numpyro_ebm.kernels.local_field import LocalFieldGibbs, local_field_gibbs
from numpyro_ebm.models import EnergyModel
from numpyro_ebm.models.pairwise import Potts, SpinGlass
from numpyro_ebm.models.sites import Site

from conftest import (
    brute_force_visible_probs,
    chi_square_pvalue,
    run_chains,
    state_index,
)

SIGNIFICANCE = 1e-3
NUM_CHAINS = 4000
NUM_SPINS = 6
NUM_SITES, NUM_STATES = 6, 3

KERNELS = {
    "sequential": local_field_gibbs,
    "random": functools.partial(local_field_gibbs, scan="random"),
    "gwg": gibbs_with_gradients,
}
# Steps to equilibrium from a fixed start: a local-field step is a sweep of N
# updates, a Gibbs-with-Gradients step is one proposal.
BURN_IN = {"sequential": 30, "random": 30, "gwg": 100}
# Each kernel and model pair costs one compilation of a few seconds; the random
# scan runs by default on the Potts model only.
SPIN_KERNELS = ["sequential", pytest.param("random", marks=pytest.mark.slow), "gwg"]


# -- exact reference distributions ------------------------------------------------


def spin_glass_case(seed=0, scale=0.5):
    rng = np.random.default_rng(seed)
    params = {
        "couplings": jnp.asarray(
            scale * rng.normal(size=(NUM_SPINS, NUM_SPINS)), dtype=float
        ),
        "fields": jnp.asarray(0.3 * rng.normal(size=NUM_SPINS), dtype=float),
    }
    return SpinGlass(NUM_SPINS), params


def potts_case(seed=0, scale=0.6):
    rng = np.random.default_rng(seed)
    shape = (NUM_SITES, NUM_STATES)
    params = {
        "couplings": jnp.asarray(scale * rng.normal(size=shape + shape), dtype=float),
        "fields": jnp.asarray(0.5 * rng.normal(size=shape), dtype=float),
    }
    return Potts(*shape), params


def spin_glass_probs(params, beta=1.0):
    """p(s) ∝ exp(−β E(s)) over all spin states, in float64, lexicographic order."""
    w = np.asarray(params["couplings"], dtype=np.float64)
    couplings = 0.5 * (w + w.T)
    np.fill_diagonal(couplings, 0.0)
    s = np.array(list(itertools.product([-1.0, 1.0], repeat=w.shape[0])))
    energy = -0.5 * np.einsum("bi,ij,bj->b", s, couplings, s) - s @ np.asarray(
        params["fields"], dtype=np.float64
    )
    return normalise(-beta * energy)


def potts_probs(params, beta=1.0):
    """p(x) ∝ exp(−β E(x)) over all Potts states, in float64, lexicographic order."""
    w = np.asarray(params["couplings"], dtype=np.float64)
    h = np.asarray(params["fields"], dtype=np.float64)
    n, q = h.shape
    couplings = 0.5 * (w + w.transpose(2, 3, 0, 1))
    x = np.array(list(itertools.product(range(q), repeat=n)))
    energy = -h[np.arange(n), x].sum(axis=1)
    for i, j in itertools.combinations(range(n), 2):
        energy -= couplings[i, x[:, i], j, x[:, j]]
    return normalise(-beta * energy)


def normalise(log_weights):
    weights = np.exp(log_weights - log_weights.max())
    return weights / weights.sum()


def exact_draws(probs, count, seed):
    return np.random.default_rng(seed).choice(probs.size, size=count, p=probs)


def spin_states(index, n=NUM_SPINS):
    bits = (index[:, None] >> np.arange(n - 1, -1, -1)) & 1
    return jnp.asarray(2.0 * bits - 1.0, dtype=float)


def potts_states(index, n=NUM_SITES, q=NUM_STATES):
    digits = (index[:, None] // q ** np.arange(n - 1, -1, -1)) % q
    return jnp.asarray(digits, dtype=jnp.int32)


def spin_index(s):
    return state_index((np.asarray(s) + 1) / 2)


def potts_index(x):
    return state_index(np.asarray(x), domain_size=NUM_STATES)


def assert_at_noise_floor(indices, probs):
    """Total variation below twice its expected value under exact sampling."""
    empirical = np.bincount(indices, minlength=probs.size) / indices.size
    # E[TV] <= Σ sqrt(p (1 − p) / n) / 2 for n independent exact draws.
    noise_floor = 0.5 * np.sum(np.sqrt(probs * (1 - probs) / indices.size))
    assert 0.5 * np.abs(empirical - probs).sum() < 2 * noise_floor


# -- samplers -------------------------------------------------------------------------


MODELS = {
    "spin_glass": lambda: SpinGlass(NUM_SPINS),
    "potts": lambda: Potts(NUM_SITES, NUM_STATES),
}


@functools.cache
def chain_sampler(kernel_name, model_name):
    """Jitted final positions of independent chains, compiled once per kernel and model.

    θ, β, the start and the number of sweeps are arguments, so the
    goodness-of-fit, temperature, stationarity and power tests share one
    compilation, and β is traced as in a tempering ladder.
    """
    model = MODELS[model_name]()
    name = model.visible_names[0]

    @jax.jit
    def sample(params, start, beta, seed, num_sweeps):
        kernel = KERNELS[kernel_name](model, inverse_temperature=beta)
        count = start.shape[0]
        key_init, key_run = jax.random.split(jax.random.key(seed))
        init_keys = jax.random.split(key_init, count)
        states = jax.vmap(kernel.init, (0, 0, None))(init_keys, {name: start}, params)

        def sweep(t, states):
            keys = jax.random.split(jax.random.fold_in(key_run, t), count)
            return jax.vmap(kernel.step, (0, 0, None))(keys, states, params)[0]

        return jax.lax.fori_loop(0, num_sweeps, sweep, states).position[name]

    return sample


def sample_spin_glass(kernel_name, params, start, beta=1.0, seed=0, num_sweeps=None):
    num_sweeps = BURN_IN[kernel_name] if num_sweeps is None else num_sweeps
    sample = chain_sampler(kernel_name, "spin_glass")
    return spin_index(sample(params, start, beta, seed, num_sweeps))


def sample_potts(kernel_name, params, start, beta=1.0, seed=0, num_sweeps=None):
    num_sweeps = BURN_IN[kernel_name] if num_sweeps is None else num_sweeps
    positions = chain_sampler(kernel_name, "potts")(
        params, start, beta, seed, num_sweeps
    )
    assert positions.dtype == jnp.int32
    return potts_index(positions)


def spin_start(value=-1.0):
    return jnp.full((NUM_CHAINS, NUM_SPINS), value)


def potts_start():
    return jnp.zeros((NUM_CHAINS, NUM_SITES), jnp.int32)


# -- goodness of fit ------------------------------------------------------------------


@pytest.mark.parametrize("kernel_name", SPIN_KERNELS)
def test_spin_glass_goodness_of_fit(kernel_name):
    _, params = spin_glass_case()
    indices = sample_spin_glass(kernel_name, params, spin_start())
    assert chi_square_pvalue(indices, spin_glass_probs(params)) > SIGNIFICANCE


@pytest.mark.parametrize("kernel_name", list(KERNELS))
def test_potts_goodness_of_fit(kernel_name):
    _, params = potts_case()
    indices = sample_potts(kernel_name, params, potts_start())
    assert chi_square_pvalue(indices, potts_probs(params)) > SIGNIFICANCE


@pytest.mark.parametrize("kernel_name", SPIN_KERNELS)
def test_spin_glass_inverse_temperature(kernel_name):
    beta = 0.4
    _, params = spin_glass_case(seed=5, scale=1.0)
    indices = sample_spin_glass(kernel_name, params, spin_start(1.0), beta, seed=1)
    assert chi_square_pvalue(indices, spin_glass_probs(params, beta)) > SIGNIFICANCE


@pytest.mark.parametrize("kernel_name", list(KERNELS))
def test_potts_inverse_temperature(kernel_name):
    beta = 2.0
    _, params = potts_case(seed=6, scale=0.3)
    num_sweeps = 2 * BURN_IN[kernel_name]
    indices = sample_potts(kernel_name, params, potts_start(), beta, 1, num_sweeps)
    assert chi_square_pvalue(indices, potts_probs(params, beta)) > SIGNIFICANCE


def test_gwg_rbm_free_energy_goodness_of_fit(tiny_rbm):
    """On a model with latent sites the kernel samples the visible marginal."""
    rbm, params = tiny_rbm
    probs = brute_force_visible_probs(params, 5, 3)
    kernel = gibbs_with_gradients(rbm, num_proposals=5)
    states = run_chains(kernel, params, {"v": jnp.zeros((NUM_CHAINS, 5))}, 30)
    indices = state_index(states.position["v"])
    assert chi_square_pvalue(indices, probs) > SIGNIFICANCE


@pytest.mark.slow
def test_gwg_binary_energy_fn_goodness_of_fit():
    """Any differentiable energy of binary units, here with a cubic term."""
    rng = np.random.default_rng(8)
    init = {
        "pairs": jnp.asarray(np.triu(rng.normal(size=(4, 4)), 1), dtype=float),
        "triple": jnp.asarray(1.5),
    }

    def energy(params, x):
        return -(x @ params["pairs"] @ x + params["triple"] * x[0] * x[1] * x[2])

    model = EnergyModel.from_energy_fn(energy, init, shape=4)
    configs = np.array(list(itertools.product([0.0, 1.0], repeat=4)))
    probs = normalise(-np.asarray(model.energy(init, jnp.asarray(configs)), np.float64))
    kernel = gibbs_with_gradients(model, num_proposals=4)
    states = run_chains(kernel, init, {"x": jnp.zeros((NUM_CHAINS, 4))}, 30)
    indices = state_index(states.position["x"])
    assert chi_square_pvalue(indices, probs) > SIGNIFICANCE


# -- stationarity and power -----------------------------------------------------------


@pytest.mark.parametrize("kernel_name", SPIN_KERNELS)
def test_spin_glass_stationarity(kernel_name):
    _, params = spin_glass_case(seed=1, scale=1.0)
    probs = spin_glass_probs(params)
    start = spin_states(exact_draws(probs, NUM_CHAINS, seed=2))
    indices = sample_spin_glass(kernel_name, params, start, seed=3, num_sweeps=3)
    assert chi_square_pvalue(indices, probs) > SIGNIFICANCE
    assert_at_noise_floor(indices, probs)


@pytest.mark.parametrize("kernel_name", list(KERNELS))
def test_potts_stationarity(kernel_name):
    _, params = potts_case(seed=1)
    probs = potts_probs(params)
    start = potts_states(exact_draws(probs, NUM_CHAINS, seed=3))
    indices = sample_potts(kernel_name, params, start, seed=4, num_sweeps=3)
    assert chi_square_pvalue(indices, probs) > SIGNIFICANCE
    assert_at_noise_floor(indices, probs)


@pytest.mark.parametrize("kernel_name", list(KERNELS))
def test_goodness_of_fit_detects_wrong_parameters(kernel_name):
    """The chi-square test has power: samples at other parameters are rejected."""
    _, params = potts_case(seed=0)
    _, other = potts_case(seed=9)
    indices = sample_potts(kernel_name, other, potts_start(), seed=5)
    assert chi_square_pvalue(indices, potts_probs(params)) < SIGNIFICANCE


@pytest.mark.parametrize("kernel_name", SPIN_KERNELS)
def test_goodness_of_fit_detects_wrong_temperature(kernel_name):
    """Samples at β = 1 are rejected as samples of exp(−0.4 E)."""
    _, params = spin_glass_case(seed=5, scale=1.0)
    indices = sample_spin_glass(kernel_name, params, spin_start(1.0), seed=6)
    assert chi_square_pvalue(indices, spin_glass_probs(params, 0.4)) < SIGNIFICANCE


# -- local fields -------------------------------------------------------------------


@pytest.mark.parametrize("scan", ["sequential", "random"])
def test_local_field_gibbs_with_extreme_fields(scan):
    """Fields of ±1000 give the forced states, with no NaN from exp or the CDF."""
    shape = (6, 4)
    favoured = jnp.array([3, 0, 2, 1, 3, 0])
    fields = jnp.full(shape, -1000.0).at[jnp.arange(6), favoured].set(1000.0)
    model = Potts(*shape, fields=fields)
    params = model.init_params()
    kernel = local_field_gibbs(model, scan=scan)
    start = jnp.zeros((50, 6), jnp.int32)
    states = jax.vmap(kernel.init, (0, 0, None))(
        jax.random.split(jax.random.key(0), 50), {"x": start}, params
    )
    for key in jax.random.split(jax.random.key(1), 8):
        keys = jax.random.split(key, 50)
        states, _ = jax.vmap(kernel.step, (0, 0, None))(keys, states, params)
    # A random scan visits every site within 8 sweeps with probability about
    # 1 − 6 (1 − 1/6)^48 ≈ 0.9998 per chain, so a few chains may keep a start
    # state at one site. A sequential scan sets every site in the first sweep.
    agree = np.mean(np.asarray(states.position["x"]) == np.asarray(favoured))
    assert agree >= (1.0 if scan == "sequential" else 0.98)


class BinaryBoltzmann(EnergyModel):
    """Fully visible Boltzmann machine on {0, 1} units with fixed J and h."""

    def __init__(self, couplings, fields):
        self.couplings, self.fields = couplings, fields
        site = Site("x", (couplings.shape[0],), (0.0, 1.0))
        super().__init__(self._energy, {}, [site])

    def _energy(self, params, x):
        pair = jnp.einsum("bi,ij,bj->b", x["x"], self.couplings, x["x"])
        return -(0.5 * pair + x["x"] @ self.fields)

    def local_fields(self, params, x):
        return x @ self.couplings + self.fields

    def coupling_matrix(self, params):
        return self.couplings


def test_local_field_binary_domain():
    """Two-valued sites other than spins use the same incremental rule."""
    rng = np.random.default_rng(6)
    w = rng.normal(size=(4, 4))
    couplings = 0.5 * (w + w.T)
    np.fill_diagonal(couplings, 0.0)
    fields = rng.normal(size=4)
    model = BinaryBoltzmann(jnp.asarray(couplings, float), jnp.asarray(fields, float))
    configs = np.array(list(itertools.product([0.0, 1.0], repeat=4)))
    pair = np.einsum("bi,ij,bj->b", configs, couplings, configs)
    probs = normalise(0.5 * pair + configs @ fields)
    start = {"x": jnp.zeros((NUM_CHAINS, 4))}
    states = run_chains(local_field_gibbs(model), {}, start, 20)
    indices = state_index(states.position["x"])
    assert chi_square_pvalue(indices, probs) > SIGNIFICANCE


# -- interfaces ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "kernel_name",
    [
        "sequential",
        *(pytest.param(k, marks=pytest.mark.slow) for k in ("random", "gwg")),
    ],
)
def test_kernel_jitted_matches_eager(kernel_name):
    model, params = potts_case()
    kernel = KERNELS[kernel_name](model)
    start = {"x": jnp.arange(NUM_SITES, dtype=jnp.int32) % NUM_STATES}
    state = kernel.init(jax.random.key(0), start, params)
    eager, _ = kernel.step(jax.random.key(1), state, params)
    jitted, _ = jax.jit(kernel.step)(jax.random.key(1), state, params)
    np.testing.assert_array_equal(eager.position["x"], jitted.position["x"])


@pytest.mark.parametrize(
    "kernel_class", [LocalFieldGibbs, GibbsWithGradients], ids=["local", "gwg"]
)
def test_kernel_runs_under_numpyro_mcmc(kernel_class):
    model, params = spin_glass_case()
    mcmc = MCMC(
        kernel_class(model),
        num_warmup=20,
        num_samples=50,
        num_chains=4,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.key(0), params, init_params={"s": jnp.ones((4, NUM_SPINS))})
    samples = mcmc.get_samples(group_by_chain=True)
    assert samples["s"].shape == (4, 50, NUM_SPINS)
    assert set(np.unique(samples["s"])) <= {-1.0, 1.0}

    tree = arviz_base.from_numpyro(mcmc)
    assert tree.posterior["s"].dims == ("chain", "draw", "s_dim_0")
    assert tree.posterior["s"].shape == (4, 50, NUM_SPINS)


def test_potts_runs_under_numpyro_mcmc():
    model, params = potts_case()
    mcmc = MCMC(
        LocalFieldGibbs(model, scan="random"),
        num_warmup=10,
        num_samples=20,
        num_chains=2,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.key(0), params)
    samples = mcmc.get_samples(group_by_chain=True)["x"]
    assert samples.shape == (2, 20, NUM_SITES)
    assert samples.dtype == jnp.int32
    tree = arviz_base.from_numpyro(mcmc)
    assert tree.posterior["x"].shape == (2, 20, NUM_SITES)
    assert set(np.unique(tree.posterior["x"].values)) <= set(range(NUM_STATES))


def test_local_field_rejects_models_without_fields(tiny_rbm):
    rbm, _ = tiny_rbm
    with pytest.raises(TypeError, match="`local_fields`"):
        local_field_gibbs(rbm)


def test_local_field_rejects_bad_scan():
    with pytest.raises(ValueError, match="`scan` must be one of"):
        local_field_gibbs(SpinGlass(3), scan="checkerboard")


def test_gwg_rejects_real_sites():
    model = EnergyModel.from_energy_fn(lambda p, x: x @ x, {}, shape=2, domain=None)
    with pytest.raises(TypeError, match="domain None"):
        gibbs_with_gradients(model)


def test_gwg_needs_onehot_energy_for_categorical_sites():
    model = EnergyModel.from_energy_fn(
        lambda p, x: -jnp.sum(x == 0), {}, shape=3, domain=(0, 1, 2)
    )
    with pytest.raises(TypeError, match="onehot_energy"):
        gibbs_with_gradients(model)


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_gwg_rejects_bad_num_proposals(value):
    with pytest.raises(ValueError, match="`num_proposals` must be a positive integer"):
        gibbs_with_gradients(SpinGlass(3), num_proposals=value)


@pytest.mark.slow
def test_gwg_onehot_energy_argument():
    """A user energy of categorical sites samples exactly given its one-hot form."""

    def energy(params, x):
        return -params["field"] * jnp.sum(x == 0) - jnp.sum(x[1:] == x[:-1])

    def onehot_energy(params, x):
        onehot = x["x"]
        same = jnp.sum(onehot[:, 1:] * onehot[:, :-1], axis=(1, 2))
        return -params["field"] * jnp.sum(onehot[..., 0], axis=1) - same

    init = {"field": jnp.asarray(0.7)}
    model = EnergyModel.from_energy_fn(energy, init, shape=4, domain=(0, 1, 2))
    configs = jnp.asarray(list(itertools.product(range(3), repeat=4)))
    probs = normalise(-np.asarray(model.energy(init, configs), np.float64))
    kernel = gibbs_with_gradients(model, num_proposals=5, onehot_energy=onehot_energy)
    start = {"x": jnp.zeros((NUM_CHAINS, 4), jnp.int32)}
    states = run_chains(kernel, init, start, 20)
    indices = state_index(states.position["x"], domain_size=3)
    assert chi_square_pvalue(indices, probs) > SIGNIFICANCE
