"""Parallel tempering on a bimodal ferromagnet and an RBM, against enumeration.

The ferromagnet has N = 12 spins with all couplings J = 0.4 and no field, so
E(s) = −J (M² − N) / 2 with magnetisation M = Σ_i s_i. To change mode a
single-spin chain at β = 1 must pass M = 0, which costs J · 144 / 2 = 28.8 in
energy and gains log C(12, 6) ≈ 6.8 in entropy, so a sweep escapes with
probability of order exp(−22), far below the 4 · 10⁵ chain sweeps run here.
The hottest replica, at β = 0.15, is above the mean-field critical temperature
(β_c = 1 / (J (N − 1)) ≈ 0.23) and crosses freely. Goodness-of-fit tests use
Pearson's chi-square at significance 1e-3 as in test_kernels.py.
"""

import functools
import itertools

import arviz_base
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer import MCMC

from numpyro_ebm.kernels.block_gibbs import block_gibbs
from numpyro_ebm.kernels.gibbs_with_gradients import gibbs_with_gradients
from numpyro_ebm.kernels.local_field import local_field_gibbs
from numpyro_ebm.kernels.tempering import (
    ParallelTempering,
    ParallelTemperingState,
    check_ladder,
    geometric_ladder,
    parallel_tempering,
)
from numpyro_ebm.models.pairwise import SpinGlass

from conftest import brute_force_visible_probs, chi_square_pvalue, state_index

SIGNIFICANCE = 1e-3
NUM_CHAINS = 2000
NUM_SPINS, COUPLING = 12, 0.4
LADDER = geometric_ladder(0.15, 6)
# 100 steps are several round trips of a replica through the ladder at the
# observed exchange rates (0.49 to 0.97 per pair).
NUM_STEPS = 100


def ferromagnet():
    model = SpinGlass(NUM_SPINS, couplings=COUPLING * np.ones((NUM_SPINS, NUM_SPINS)))
    return model, model.init_params()


def ferromagnet_probs(beta=1.0):
    """p(s) ∝ exp(−β E(s)) over all 2^12 states in lexicographic order, in float64."""
    s = np.array(list(itertools.product([-1.0, 1.0], repeat=NUM_SPINS)))
    magnetisation = s.sum(axis=1)
    log_weights = 0.5 * beta * COUPLING * (magnetisation**2 - NUM_SPINS)
    weights = np.exp(log_weights - log_weights.max())
    return weights / weights.sum()


def spin_index(s):
    return state_index((np.asarray(s) + 1) / 2)


def spin_states(index):
    bits = (index[:, None] >> np.arange(NUM_SPINS - 1, -1, -1)) & 1
    return 2.0 * bits - 1.0


@functools.cache
def ferromagnet_sampler():
    """Jitted β = 1 positions after PT steps from given replica positions.

    ``replica_start`` has shape (chains, K, N); β scales the ladder and is
    traced, so every test on the ferromagnet shares one compilation.
    """
    model, params = ferromagnet()

    @jax.jit
    def sample(replica_start, beta, seed, num_steps):
        kernel = parallel_tempering(
            model,
            beta,
            make_kernel=local_field_gibbs,
            inverse_temperatures=LADDER,
        )
        count = replica_start.shape[0]
        key_init, key_run = jax.random.split(jax.random.key(seed))

        def init_chain(key, positions):
            def init_replica(replica_beta, key, position):
                inner = local_field_gibbs(model, inverse_temperature=replica_beta)
                return inner.init(key, {"s": position}, params)

            keys = jax.random.split(key, LADDER.shape[0])
            replicas = jax.vmap(init_replica)(beta * LADDER, keys, positions)
            top = {"s": positions[-1]}
            return ParallelTemperingState(top, replicas, jnp.zeros((), jnp.int32))

        states = jax.vmap(init_chain)(jax.random.split(key_init, count), replica_start)

        def advance(t, carry):
            states, acceptance = carry
            keys = jax.random.split(jax.random.fold_in(key_run, t), count)
            states, info = jax.vmap(kernel.step, (0, 0, None))(keys, states, params)
            return states, acceptance + info.swap_acceptance.mean(axis=0)

        acceptance = jnp.zeros(LADDER.shape[0] - 1)
        states, acceptance = jax.lax.fori_loop(
            0, num_steps, advance, (states, acceptance)
        )
        return states.position["s"], acceptance / num_steps

    return sample


def all_up_start():
    return jnp.ones((NUM_CHAINS, LADDER.shape[0], NUM_SPINS))


# -- ladders --------------------------------------------------------------------------


def test_geometric_ladder():
    ladder = np.asarray(geometric_ladder(0.1, 5))
    assert ladder[0] == pytest.approx(0.1)
    assert ladder[-1] == 1.0
    ratios = ladder[1:] / ladder[:-1]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-5)


@pytest.mark.parametrize(
    "beta_min, num_temperatures, match",
    [
        (0.0, 4, "`beta_min` must lie in"),
        (1.0, 4, "`beta_min` must lie in"),
        (float("nan"), 4, "`beta_min` must lie in"),
        (0.5, 1, "`num_temperatures` must be an integer >= 2"),
        (0.5, 3.0, "`num_temperatures` must be an integer >= 2"),
    ],
)
def test_geometric_ladder_rejects(beta_min, num_temperatures, match):
    with pytest.raises(ValueError, match=match):
        geometric_ladder(beta_min, num_temperatures)


@pytest.mark.parametrize(
    "ladder, match",
    [
        ([1.0], "at least two values"),
        ([[0.5, 1.0]], "1-D array"),
        ([0.0, 1.0], "finite and positive"),
        ([-0.5, 1.0], "finite and positive"),
        ([np.nan, 1.0], "finite and positive"),
        ([0.5, 0.2, 1.0], "strictly increasing"),
        ([0.5, 0.5, 1.0], "strictly increasing"),
        ([0.2, 0.5], "must end at 1"),
        ([0.5, 2.0], "must end at 1"),
    ],
)
def test_ladder_rejects(ladder, match):
    with pytest.raises(ValueError, match=match):
        check_ladder(ladder)


def test_parallel_tempering_checks_arguments():
    model, _ = ferromagnet()
    with pytest.raises(ValueError, match="strictly increasing"):
        parallel_tempering(
            model, make_kernel=local_field_gibbs, inverse_temperatures=[1.0, 0.5]
        )
    with pytest.raises(TypeError, match="`make_kernel` must be a kernel factory"):
        parallel_tempering(model, make_kernel=None, inverse_temperatures=LADDER)
    with pytest.raises(TypeError, match="hidden_logits"):
        parallel_tempering(model, make_kernel=block_gibbs, inverse_temperatures=LADDER)


# -- bimodal ferromagnet --------------------------------------------------------------


def test_single_chain_stays_in_one_mode():
    """Local-field Gibbs alone never leaves the mode it starts in.

    The final states therefore fail the goodness-of-fit test, which shows the
    test has the power to detect a sampler stuck in one mode.
    """
    model, params = ferromagnet()
    kernel = local_field_gibbs(model)
    start = {"s": jnp.ones((NUM_CHAINS, NUM_SPINS))}
    keys = jax.random.split(jax.random.key(0), NUM_CHAINS)
    states = jax.vmap(kernel.init, (0, 0, None))(keys, start, params)

    @jax.jit
    def lowest_magnetisation(states, key):
        def sweep(carry, key):
            states, lowest = carry
            keys = jax.random.split(key, NUM_CHAINS)
            states, _ = jax.vmap(kernel.step, (0, 0, None))(keys, states, params)
            lowest = jnp.minimum(lowest, states.position["s"].sum(axis=1))
            return (states, lowest), None

        lowest = jnp.full(NUM_CHAINS, NUM_SPINS, dtype=float)
        keys = jax.random.split(key, 2 * NUM_STEPS)
        return jax.lax.scan(sweep, (states, lowest), keys)[0]

    states, lowest = lowest_magnetisation(states, jax.random.key(1))
    assert np.min(lowest) > 0
    indices = spin_index(states.position["s"])
    assert chi_square_pvalue(indices, ferromagnet_probs()) < SIGNIFICANCE


def test_tempering_visits_both_modes():
    model, params = ferromagnet()
    kernel = parallel_tempering(
        model, make_kernel=local_field_gibbs, inverse_temperatures=LADDER
    )
    num_chains = 4
    start = {"s": jnp.ones((num_chains, NUM_SPINS))}
    keys = jax.random.split(jax.random.key(0), num_chains)
    states = jax.vmap(kernel.init, (0, 0, None))(keys, start, params)

    @jax.jit
    def trajectory(states, key):
        def step(states, key):
            keys = jax.random.split(key, num_chains)
            states, info = jax.vmap(kernel.step, (0, 0, None))(keys, states, params)
            return states, (states.position["s"].sum(axis=1), info)

        return jax.lax.scan(step, states, jax.random.split(key, 5 * NUM_STEPS))[1]

    magnetisation, info = trajectory(states, jax.random.key(1))
    assert info.swap_acceptance.shape == (5 * NUM_STEPS, num_chains, 5)
    assert np.all(info.swap_acceptance.mean(axis=(0, 1)) > 0.1)
    # Pairs (0, 1), (2, 3), (4, 5) exchange on even steps, the others on odd.
    swapped = np.asarray(info.is_swapped)
    assert not swapped[0::2, :, 1::2].any()
    assert not swapped[1::2, :, 0::2].any()
    assert np.all(swapped.mean(axis=(0, 1)) > 0.0)
    for chain in range(num_chains):
        assert np.any(magnetisation[:, chain] > 0)
        assert np.any(magnetisation[:, chain] < 0)


def test_tempering_goodness_of_fit():
    positions, acceptance = ferromagnet_sampler()(all_up_start(), 1.0, 0, NUM_STEPS)
    assert np.all(np.asarray(acceptance) > 0.1)
    indices = spin_index(positions)
    assert chi_square_pvalue(indices, ferromagnet_probs()) > SIGNIFICANCE


def test_tempering_inverse_temperature():
    """β scales the ladder, so the top replica samples exp(−β E)."""
    beta = 0.5
    positions, _ = ferromagnet_sampler()(all_up_start(), beta, 1, NUM_STEPS)
    indices = spin_index(positions)
    assert chi_square_pvalue(indices, ferromagnet_probs(beta)) > SIGNIFICANCE
    assert chi_square_pvalue(indices, ferromagnet_probs()) < SIGNIFICANCE


def test_tempering_stationarity():
    """Replicas started from exact samples of their tempered distributions stay exact."""
    rng = np.random.default_rng(2)
    start = np.empty((NUM_CHAINS, LADDER.shape[0], NUM_SPINS))
    for k, beta in enumerate(np.asarray(LADDER)):
        probs = ferromagnet_probs(float(beta))
        start[:, k] = spin_states(rng.choice(probs.size, size=NUM_CHAINS, p=probs))
    positions, _ = ferromagnet_sampler()(jnp.asarray(start, dtype=float), 1.0, 2, 3)
    indices = spin_index(positions)
    probs = ferromagnet_probs()
    assert chi_square_pvalue(indices, probs) > SIGNIFICANCE
    empirical = np.bincount(indices, minlength=probs.size) / indices.size
    # E[TV] <= Σ sqrt(p (1 − p) / n) / 2 for n independent exact draws.
    noise_floor = 0.5 * np.sum(np.sqrt(probs * (1 - probs) / indices.size))
    assert 0.5 * np.abs(empirical - probs).sum() < 2 * noise_floor


# -- other inner kernels ----------------------------------------------------------------


def test_tempering_block_gibbs_goodness_of_fit(tiny_rbm):
    """Exchanges use the joint energy E(v, h) of block Gibbs states."""
    rbm, params = tiny_rbm
    kernel = parallel_tempering(
        rbm, make_kernel=block_gibbs, inverse_temperatures=[0.3, 0.6, 1.0]
    )
    count = 4000
    keys = jax.random.split(jax.random.key(0), count)
    start = {"v": jnp.zeros((count, 5))}
    states = jax.vmap(kernel.init, (0, 0, None))(keys, start, params)

    @jax.jit
    def run(states, key):
        def step(states, key):
            keys = jax.random.split(key, count)
            return jax.vmap(kernel.step, (0, 0, None))(keys, states, params)[0], None

        return jax.lax.scan(step, states, jax.random.split(key, 50))[0]

    states = run(states, jax.random.key(1))
    indices = state_index(states.position["v"])
    probs = brute_force_visible_probs(params, 5, 3)
    assert chi_square_pvalue(indices, probs) > SIGNIFICANCE


@pytest.mark.slow
def test_tempering_gwg_goodness_of_fit():
    """Any inner factory works, here Gibbs-with-Gradients with four proposals a step."""
    model, params = ferromagnet()
    make_kernel = functools.partial(gibbs_with_gradients, num_proposals=4)
    kernel = parallel_tempering(
        model, make_kernel=make_kernel, inverse_temperatures=LADDER
    )
    keys = jax.random.split(jax.random.key(0), NUM_CHAINS)
    start = {"s": jnp.ones((NUM_CHAINS, NUM_SPINS))}
    states = jax.vmap(kernel.init, (0, 0, None))(keys, start, params)

    @jax.jit
    def run(states, key):
        def step(states, key):
            keys = jax.random.split(key, NUM_CHAINS)
            return jax.vmap(kernel.step, (0, 0, None))(keys, states, params)[0], None

        return jax.lax.scan(step, states, jax.random.split(key, 3 * NUM_STEPS))[0]

    states = run(states, jax.random.key(1))
    indices = spin_index(states.position["s"])
    assert chi_square_pvalue(indices, ferromagnet_probs()) > SIGNIFICANCE


# -- interfaces ---------------------------------------------------------------------


@pytest.mark.slow
def test_tempering_jitted_matches_eager():
    model, params = ferromagnet()
    kernel = parallel_tempering(
        model, make_kernel=local_field_gibbs, inverse_temperatures=LADDER
    )
    state = kernel.init(jax.random.key(0), {"s": jnp.ones(NUM_SPINS)}, params)
    eager, eager_info = kernel.step(jax.random.key(1), state, params)
    jitted, jitted_info = jax.jit(kernel.step)(jax.random.key(1), state, params)
    np.testing.assert_array_equal(
        eager.replicas.position["s"], jitted.replicas.position["s"]
    )
    np.testing.assert_array_equal(eager_info.is_swapped, jitted_info.is_swapped)
    np.testing.assert_array_equal(eager.position["s"], eager.replicas.position["s"][-1])
    assert int(eager.step) == 1


def test_tempering_runs_under_numpyro_mcmc():
    model, params = ferromagnet()
    kernel = ParallelTempering(
        model, make_kernel=local_field_gibbs, inverse_temperatures=LADDER
    )
    mcmc = MCMC(
        kernel,
        num_warmup=10,
        num_samples=40,
        num_chains=4,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.key(0), params, init_params={"s": jnp.ones((4, NUM_SPINS))})
    samples = mcmc.get_samples(group_by_chain=True)
    assert samples["s"].shape == (4, 40, NUM_SPINS)
    assert set(np.unique(samples["s"])) <= {-1.0, 1.0}

    tree = arviz_base.from_numpyro(mcmc)
    assert tree.posterior["s"].dims == ("chain", "draw", "s_dim_0")
    assert tree.posterior["s"].shape == (4, 40, NUM_SPINS)
