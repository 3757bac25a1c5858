"""The periodic Ising lattice and its checkerboard kernels, against exact results.

Goodness-of-fit tests draw one sample per independent chain and apply
Pearson's chi-square test at significance 1e-3 to the joint histogram of the
bond sum and the magnetisation, whose exact distribution comes from
enumerating every state of the lattice. Thermodynamic averages are compared
with exact values within 3 Monte Carlo standard errors computed from the
effective sample size of per-chain traces (arviz-stats). All seeds are fixed.
"""

import functools
import itertools
import json
import runpy
import sys
from pathlib import Path

import arviz_base
import arviz_stats
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from numpyro.infer import MCMC
from numpyro.infer.util import log_density
from scipy import optimize

from numpyro_ebm.estimators import log_partition
from numpyro_ebm.kernels import Kernel
from numpyro_ebm.kernels.checkerboard import (
    CheckerboardHeatBath,
    CheckerboardInfo,
    CheckerboardMetropolis,
    CheckerboardState,
    checkerboard_heat_bath,
    checkerboard_metropolis,
)
from numpyro_ebm.learning import MaximumLikelihood
from numpyro_ebm.models import BernoulliRBM, EnergyModel
from numpyro_ebm.models.ising import (
    CRITICAL_INVERSE_TEMPERATURE,
    IsingLattice,
    ising_lattice_model,
    spontaneous_magnetisation,
    torus_energy_per_spin,
    torus_log_partition,
)

from conftest import chi_square_pvalue

SIGNIFICANCE = 1e-3
NUM_CHAINS = 4000
KERNELS = [checkerboard_heat_bath, checkerboard_metropolis]
KERNEL_IDS = ["heat_bath", "metropolis"]
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# Exact values of the 4×4 torus by enumeration of all 65,536 states ...
TABLE_4X4 = {  # β: (⟨E⟩/N, ⟨|m|⟩, ⟨m²⟩)
    0.3: (-0.84405407, 0.52035800, 0.35764680),
    CRITICAL_INVERSE_TEMPERATURE: (-1.56562379, 0.84386044, 0.76135891),
    0.6: (-1.90806953, 0.97286745, 0.95289806),
}
LOG_Z_4X4 = {
    0.2: 11.7714703585,
    0.3: 12.7855233257,
    0.4: 14.5610930238,
    CRITICAL_INVERSE_TEMPERATURE: 15.5219154588,
    0.5: 17.1053671187,
    0.6: 20.0565328843,
    1.0: 32.6987214019,
}
# ... and the finite-torus energies per spin from Kaufman's Z at T = 1.75, 2, 2.25,
# T_c, 2.5, 2.75, 3.
TABLE_TEMPERATURES = [1.75, 2.0, 2.25, 1 / CRITICAL_INVERSE_TEMPERATURE, 2.5, 2.75, 3.0]
TABLE_ENERGY = {
    8: [-1.87989847, -1.74568317, -1.51337699, -1.49158911, -1.22232064, -0.99151695,
        -0.84131543],
    40: [-1.87995599, -1.74556457, -1.46609485, -1.42977131, -1.10635612, -0.93482784,
         -0.81730960],
    64: [-1.87995599, -1.74556458, -1.46385089, -1.42393839, -1.10608299, -0.93482716,
         -0.81730959],
}  # fmt: skip


# -- exact enumeration ---------------------------------------------------------


def brute_force_energy(s: np.ndarray, coupling: float, field: float) -> float:
    """E of one configuration by looping over sites and axes: bond (i, i + e_axis)."""
    shape = s.shape
    bonds = 0.0
    for site in itertools.product(*(range(n) for n in shape)):
        for axis in range(len(shape)):
            neighbour = list(site)
            neighbour[axis] = (neighbour[axis] + 1) % shape[axis]
            bonds += s[site] * s[tuple(neighbour)]
    return -coupling * bonds - field * s.sum()


def brute_force_local_field(s, coupling, field):
    shape = s.shape
    out = np.zeros(shape)
    for site in itertools.product(*(range(n) for n in shape)):
        total = 0.0
        for axis in range(len(shape)):
            for step in (-1, 1):
                neighbour = list(site)
                neighbour[axis] = (neighbour[axis] + step) % shape[axis]
                total += s[tuple(neighbour)]
        out[site] = coupling * total + field
    return out


@functools.cache
def all_spins(shape: tuple[int, ...]) -> np.ndarray:
    """Every ±1 configuration, in the order of the binary digits of its index."""
    n = int(np.prod(shape))
    bits = (np.arange(2**n)[:, None] >> np.arange(n - 1, -1, -1)) & 1
    return (2.0 * bits - 1.0).reshape((2**n,) + shape)


@functools.cache
def bond_and_magnetisation(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Bond sum B and total magnetisation M of every configuration, as integers."""
    spins = all_spins(shape)
    axes = tuple(range(1, len(shape) + 1))
    bonds = sum(spins * np.roll(spins, 1, axis) for axis in axes).sum(axis=axes)
    return bonds.astype(int), spins.sum(axis=axes).astype(int)


def state_probs(shape, beta, coupling=1.0, field=0.0) -> np.ndarray:
    """Exact p(s) ∝ exp(β (J B + h M)) of every configuration, in float64."""
    bonds, mags = bond_and_magnetisation(shape)
    log_weight = beta * (coupling * bonds + field * mags)
    weight = np.exp(log_weight - log_weight.max())
    return weight / weight.sum()


def joint_code(shape, bonds, mags) -> np.ndarray:
    """Integer code of the pair (B, M), so that a histogram over codes is joint."""
    n = int(np.prod(shape))
    return (bonds + len(shape) * n) * (2 * n + 1) + (mags + n)


def exact_joint_probs(shape, beta, coupling=1.0, field=0.0) -> np.ndarray:
    bonds, mags = bond_and_magnetisation(shape)
    codes = joint_code(shape, bonds, mags)
    return np.bincount(codes, weights=state_probs(shape, beta, coupling, field))


def sample_codes(shape, spins) -> np.ndarray:
    spins = np.asarray(spins, dtype=np.float64)
    axes = tuple(range(1, len(shape) + 1))
    bonds = sum(spins * np.roll(spins, 1, axis) for axis in axes).sum(axis=axes)
    return joint_code(
        shape, np.rint(bonds).astype(int), spins.sum(axis=axes).astype(int)
    )


def ising_params(coupling=1.0, field=0.0):
    return {"coupling": jnp.asarray(coupling), "field": jnp.asarray(field)}


# -- sampling helpers ----------------------------------------------------------


@functools.cache
def sampler(make_kernel, shape, num_sweeps):
    """Jitted run of independent chains; β and θ are traced, so it compiles once."""
    model = IsingLattice(shape)

    @jax.jit
    def run(rng_key, spins, params, beta):
        kernel = make_kernel(model, beta)
        count = spins.shape[0]
        key_init, key_run = jax.random.split(rng_key)
        states = jax.vmap(kernel.init, (0, 0, None))(
            jax.random.split(key_init, count), {"s": spins}, params
        )

        def sweep(states, key):
            keys = jax.random.split(key, count)
            states, info = jax.vmap(kernel.step, (0, 0, None))(keys, states, params)
            return states, jnp.mean(info.flip_rate)

        states, flip_rates = jax.lax.scan(
            sweep, states, jax.random.split(key_run, num_sweeps)
        )
        return states.position["s"], flip_rates

    return run


def random_spins(shape, count, seed):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.choice([-1.0, 1.0], size=(count,) + shape))


@functools.cache
def tracer(make_kernel, shape, num_burn_in, num_sweeps):
    """Per-sweep energy per spin, |m| and m² of every chain, after a burn-in."""
    model = IsingLattice(shape)
    n = model.num_spins

    @jax.jit
    def run(rng_key, spins, params, beta):
        kernel = make_kernel(model, beta)
        count = spins.shape[0]
        key_init, key_burn, key_run = jax.random.split(rng_key, 3)
        states = jax.vmap(kernel.init, (0, 0, None))(
            jax.random.split(key_init, count), {"s": spins}, params
        )

        def sweep(states, key):
            keys = jax.random.split(key, count)
            states, _ = jax.vmap(kernel.step, (0, 0, None))(keys, states, params)
            s = states.position["s"]
            m = jnp.sum(s, axis=tuple(range(1, s.ndim))) / n
            record = {
                "energy_per_spin": model.energy(params, states.position) / n,
                "abs_m": jnp.abs(m),
                "m2": m**2,
            }
            return states, record

        states, _ = jax.lax.scan(sweep, states, jax.random.split(key_burn, num_burn_in))
        _, records = jax.lax.scan(sweep, states, jax.random.split(key_run, num_sweeps))
        return records

    return run


def trace_tree(records):
    # scan stacks sweeps first; ArviZ wants (chain, draw).
    posterior = {k: np.swapaxes(np.asarray(v), 0, 1) for k, v in records.items()}
    return arviz_base.from_dict({"posterior": posterior})


def errors_in_standard_errors(tree, exact: dict[str, float]) -> dict[str, float]:
    means = tree.posterior.dataset.mean(("chain", "draw"))
    mcse = arviz_stats.mcse(tree, var_names=list(exact))
    return {
        name: float(abs(means[name] - value) / mcse[name].values)
        for name, value in exact.items()
    }


# -- the model -----------------------------------------------------------------


@pytest.mark.parametrize(
    "shape", [(4, 4), (2, 2), (3, 5), (6,), (2, 2, 2), (3, 3, 3), (4, 2, 4)]
)
def test_energy_matches_loop_over_bonds(shape):
    rng = np.random.default_rng(0)
    coupling, field = 0.7, -0.3
    model = IsingLattice(shape)
    spins = rng.choice([-1.0, 1.0], size=(5,) + shape)
    params = ising_params(coupling, field)
    energies = np.asarray(model.energy(params, jnp.asarray(spins)))
    expected = [brute_force_energy(s, coupling, field) for s in spins]
    np.testing.assert_allclose(energies, expected, rtol=1e-6, atol=1e-5)
    assert model.num_bonds == len(shape) * int(np.prod(shape))


@pytest.mark.parametrize("shape", [(4, 4), (2, 2), (3, 5), (2, 4, 2)])
def test_local_field_matches_loops_and_flip_energy(shape):
    rng = np.random.default_rng(1)
    coupling, field = -0.4, 0.25
    model = IsingLattice(shape)
    params = ising_params(coupling, field)
    s = rng.choice([-1.0, 1.0], size=shape)
    local = np.asarray(model.local_field(params, jnp.asarray(s)))
    np.testing.assert_allclose(
        local, brute_force_local_field(s, coupling, field), rtol=1e-6, atol=1e-6
    )
    # Flipping s_i changes the energy by 2 s_i h_i, at every site.
    flipped = np.repeat(s[None], s.size, axis=0).reshape(s.size, -1)
    flipped[np.arange(s.size), np.arange(s.size)] *= -1
    energies = np.asarray(
        model.energy(params, jnp.asarray(flipped.reshape((s.size,) + shape)))
    )
    base = float(model.energy(params, jnp.asarray(s[None]))[0])
    np.testing.assert_allclose(
        energies - base, 2 * (s * local).ravel(), rtol=1e-5, atol=1e-5
    )


def test_local_field_of_a_batch():
    model = IsingLattice((4, 6))
    params = ising_params(0.5, 0.1)
    spins = random_spins((4, 6), 3, seed=2)
    batched = model.local_field(params, spins)
    single = jnp.stack([model.local_field(params, s) for s in spins])
    np.testing.assert_allclose(batched, single, rtol=1e-6)


def test_numpyro_model_defines_the_same_energy():
    """The NumPyro model and the roll-based energy of IsingLattice agree."""
    shape = (4, 6)
    model = IsingLattice(shape, coupling=0.3, field=-0.2)
    params = model.init_params()
    spins = random_spins(shape, 4, seed=3)
    for s, energy in zip(spins, model.energy(params, spins), strict=True):
        log_joint, _ = log_density(
            ising_lattice_model, (shape,), {}, {**params, "s": s}
        )
        np.testing.assert_allclose(-log_joint, energy, rtol=1e-6)


def test_from_numpyro_builds_the_same_model():
    shape = (4, 4)
    model = EnergyModel.from_numpyro(ising_lattice_model, shape, 0.3, -0.2)
    lattice = IsingLattice(shape, coupling=0.3, field=-0.2)
    assert model.visible_sites == lattice.visible_sites
    spins = random_spins(shape, 4, seed=3)
    np.testing.assert_allclose(
        model.energy(model.init_params(), spins),
        lattice.energy(lattice.init_params(), spins),
        rtol=1e-6,
    )


def test_model_sites_and_params():
    model = IsingLattice((4, 4, 4), coupling=0.5, field=0.1, name="spins")
    assert model.site_names == ("spins",)
    assert model.visible_sites[0].domain == (-1.0, 1.0)
    assert model.visible_sites[0].shape == (4, 4, 4)
    assert model.param_names == ("coupling", "field")
    assert float(model.init_params()["coupling"]) == pytest.approx(0.5)
    assert model.num_spins == 64
    assert model.num_bonds == 192
    # Eager validation rejects values that are not spins.
    with pytest.raises(ValueError, match="outside the site's domain"):
        model.as_configuration(np.zeros((1, 4, 4, 4)))


@pytest.mark.parametrize("shape", [(1, 4), (4, 0), (), (4.0, 4), "ab"])
def test_model_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="side lengths of at least 2"):
        IsingLattice(shape)


def test_ring_partition_function():
    """The 1-D ring of L spins has Z = (2 cosh β)^L + (2 sinh β)^L."""
    length, beta = 8, 0.7
    model = IsingLattice((length,))
    energies = np.asarray(
        model.energy(ising_params(), jnp.asarray(all_spins((length,)))), np.float64
    )
    log_z = np.log(np.sum(np.exp(-beta * energies)))
    exact = np.log((2 * np.cosh(beta)) ** length + (2 * np.sinh(beta)) ** length)
    assert log_z == pytest.approx(exact, rel=1e-6)


# -- exact values on the torus -------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 4), (2, 2), (2, 4), (3, 4), (4, 3), (3, 3)])
@pytest.mark.parametrize("beta", [0.2, 0.3, CRITICAL_INVERSE_TEMPERATURE, 0.6, 1.0])
def test_kaufman_matches_enumeration(shape, beta):
    bonds, _ = bond_and_magnetisation(shape)
    log_weights = beta * bonds.astype(np.float64)
    shift = log_weights.max()
    weights = np.exp(log_weights - shift)
    log_z = shift + np.log(weights.sum())
    energy = -np.sum(bonds * weights) / weights.sum() / np.prod(shape)
    assert torus_log_partition(shape, beta) == pytest.approx(log_z, abs=1e-10)
    assert torus_energy_per_spin(shape, beta) == pytest.approx(energy, abs=1e-10)


@pytest.mark.parametrize("shape, coupling", [((4, 4), 0.3), ((3, 5), 0.6)])
def test_enumeration_estimator_matches_kaufman(shape, coupling):
    """log_partition (enumeration, float32) of IsingLattice against Kaufman's Z."""
    model = IsingLattice(shape, coupling=coupling)
    log_z = float(log_partition(model, model.init_params()))
    assert log_z == pytest.approx(torus_log_partition(shape, coupling), rel=1e-6)


def test_kaufman_matches_reference_tables():
    for beta, value in LOG_Z_4X4.items():
        assert torus_log_partition((4, 4), beta) == pytest.approx(value, abs=1e-9)
    for beta, (energy, _, _) in TABLE_4X4.items():
        assert torus_energy_per_spin((4, 4), beta) == pytest.approx(energy, abs=1e-8)
    for size, energies in TABLE_ENERGY.items():
        for temperature, energy in zip(TABLE_TEMPERATURES, energies, strict=True):
            value = torus_energy_per_spin((size, size), 1 / temperature)
            assert value == pytest.approx(energy, abs=1e-6)
            # The table rounds to 8 decimals.
            assert value == pytest.approx(energy, abs=6e-9)


def test_kaufman_approaches_onsager_and_yang():
    # Onsager's infinite-lattice energies per spin (Onsager 1944).
    onsager = {0.3: -0.7044990708, 0.5: -1.7455645753, 0.6: -1.9090861777}
    for beta, energy in onsager.items():
        assert torus_energy_per_spin((256, 256), beta) == pytest.approx(
            energy, abs=1e-9
        )
    assert spontaneous_magnetisation(0.6) == pytest.approx(0.9736086674, abs=1e-10)
    assert spontaneous_magnetisation(4 / 9) == pytest.approx(0.6718540267, abs=1e-10)
    assert spontaneous_magnetisation(0.4) == 0.0


def test_exact_functions_validate_arguments():
    with pytest.raises(ValueError, match="two-dimensional"):
        torus_energy_per_spin((4, 4, 4), 0.3)
    with pytest.raises(ValueError, match="positive"):
        torus_log_partition((4, 4), 0.0)


# -- exactness of the kernels --------------------------------------------------


@pytest.mark.parametrize("make_kernel", KERNELS, ids=KERNEL_IDS)
@pytest.mark.parametrize(
    "beta, coupling, field", [(0.3, 1.0, 0.0), (0.6, 1.0, 0.0), (1.0, 0.35, 0.15)]
)
def test_goodness_of_fit_4x4(make_kernel, beta, coupling, field):
    # Random starts are symmetric under a global flip, as the dynamics are at
    # h = 0, so the slow tunnelling between ±m does not bias the sample at β = 0.6.
    shape = (4, 4)
    spins, _ = sampler(make_kernel, shape, 100)(
        jax.random.key(0),
        random_spins(shape, NUM_CHAINS, seed=0),
        ising_params(coupling, field),
        beta,
    )
    probs = exact_joint_probs(shape, beta, coupling, field)
    assert chi_square_pvalue(sample_codes(shape, spins), probs) > SIGNIFICANCE


@pytest.mark.parametrize("make_kernel", KERNELS, ids=KERNEL_IDS)
@pytest.mark.parametrize("shape", [(2, 2, 2), (8,), (2, 4)])
def test_goodness_of_fit_full_state_small_lattices(make_kernel, shape):
    """Chi-square over every state of 2×2×2, the 8-ring and 2×4, with a field."""
    beta, coupling, field = 0.5, 0.5, 0.2
    spins, _ = sampler(make_kernel, shape, 100)(
        jax.random.key(1),
        random_spins(shape, NUM_CHAINS, seed=1),
        ising_params(coupling, field),
        beta,
    )
    bits = (np.asarray(spins).reshape(NUM_CHAINS, -1) + 1) // 2
    index = bits.astype(int) @ (2 ** np.arange(bits.shape[1] - 1, -1, -1))
    probs = state_probs(shape, beta, coupling, field)
    assert chi_square_pvalue(index, probs) > SIGNIFICANCE


@pytest.mark.parametrize("make_kernel", KERNELS, ids=KERNEL_IDS)
@pytest.mark.parametrize("beta", [0.3, 0.6])
def test_stationarity_from_exact_samples(make_kernel, beta):
    shape = (4, 4)
    probs = state_probs(shape, beta)
    rng = np.random.default_rng(2)
    start = all_spins(shape)[rng.choice(probs.size, size=NUM_CHAINS, p=probs)]
    spins, _ = sampler(make_kernel, shape, 3)(
        jax.random.key(2), jnp.asarray(start), ising_params(), beta
    )
    codes = sample_codes(shape, spins)
    joint = exact_joint_probs(shape, beta)
    assert chi_square_pvalue(codes, joint) > SIGNIFICANCE
    # Total variation at the Monte Carlo noise floor: E[TV] <= sum sqrt(p (1-p) / N) / 2.
    empirical = np.bincount(codes, minlength=joint.size) / codes.size
    noise_floor = 0.5 * np.sum(np.sqrt(joint * (1 - joint) / codes.size))
    assert 0.5 * np.abs(empirical - joint).sum() < 2 * noise_floor


def synchronous_heat_bath(model, beta):
    """A wrong kernel: every spin redrawn at once from the old local fields."""

    def init(rng_key, position, params):
        return CheckerboardState({"s": jnp.asarray(position["s"], dtype=float)})

    def step(rng_key, state, params):
        s = state.position["s"]
        probs = jax.nn.sigmoid(2 * beta * model.local_field(params, s))
        new = jnp.where(jax.random.uniform(rng_key, s.shape) < probs, 1.0, -1.0)
        return CheckerboardState({"s": new}), CheckerboardInfo(jnp.mean(new != s))

    return Kernel(init, step)


@pytest.mark.parametrize(
    "make_kernel, beta, tested_beta",
    [
        (checkerboard_heat_bath, 0.3, 0.33),
        (checkerboard_metropolis, 0.3, 0.33),
        (synchronous_heat_bath, 0.3, 0.3),
    ],
    ids=["heat_bath_wrong_beta", "metropolis_wrong_beta", "synchronous_update"],
)
def test_goodness_of_fit_has_power(make_kernel, beta, tested_beta):
    """The test rejects samples at a 10 % wrong β, and a non-checkerboard update."""
    shape = (4, 4)
    spins, _ = sampler(make_kernel, shape, 100)(
        jax.random.key(3), random_spins(shape, NUM_CHAINS, seed=3), ising_params(), beta
    )
    probs = exact_joint_probs(shape, tested_beta)
    assert chi_square_pvalue(sample_codes(shape, spins), probs) < SIGNIFICANCE


@pytest.mark.parametrize("make_kernel", KERNELS, ids=KERNEL_IDS)
def test_table_4x4(make_kernel):
    """⟨E⟩/N, ⟨|m|⟩ and ⟨m²⟩ at β = 0.3, β_c and 0.6 within 3 MCSE of the exact 4×4 values."""
    shape = (4, 4)
    run = tracer(make_kernel, shape, 200, 5000)
    for seed, (beta, (energy, abs_m, m2)) in enumerate(TABLE_4X4.items()):
        records = run(
            jax.random.key(10 + seed),
            random_spins(shape, 64, seed),
            ising_params(),
            beta,
        )
        tree = trace_tree(records)
        errors = errors_in_standard_errors(
            tree, {"energy_per_spin": energy, "abs_m": abs_m, "m2": m2}
        )
        assert max(errors.values()) < 3, (beta, errors)


@pytest.mark.parametrize("make_kernel", KERNELS, ids=KERNEL_IDS)
@pytest.mark.parametrize("beta", [0.3, 0.6])
def test_energy_64x64_matches_kaufman(make_kernel, beta):
    """Energy per spin of the 64×64 torus within 3 MCSE of Kaufman's exact value.

    At these β the finite-size correction is below 1e-9, so the infinite-lattice
    value would do as well; the test uses the exact finite-torus one.
    """
    shape = (64, 64)
    records = tracer(make_kernel, shape, 200, 1000)(
        jax.random.key(20), jnp.ones((8,) + shape), ising_params(), beta
    )
    tree = trace_tree({"energy_per_spin": records["energy_per_spin"]})
    exact = torus_energy_per_spin(shape, beta)
    errors = errors_in_standard_errors(tree, {"energy_per_spin": exact})
    assert errors["energy_per_spin"] < 3, errors


# -- the kernel interface ------------------------------------------------------


@pytest.mark.parametrize("make_kernel", KERNELS, ids=KERNEL_IDS)
@pytest.mark.parametrize("shape", [(6, 4), (4, 4, 4)])
def test_kernel_jitted_matches_eager(make_kernel, shape):
    model = IsingLattice(shape)
    params = ising_params(0.4, 0.1)
    kernel = make_kernel(model, 0.7)
    state = kernel.init(jax.random.key(0), {"s": random_spins(shape, 1, 4)[0]}, params)
    eager, eager_info = kernel.step(jax.random.key(1), state, params)
    jitted, jitted_info = jax.jit(kernel.step)(jax.random.key(1), state, params)
    np.testing.assert_array_equal(eager.position["s"], jitted.position["s"])
    assert eager_info.flip_rate == jitted_info.flip_rate
    assert isinstance(eager, CheckerboardState)
    assert isinstance(eager_info, CheckerboardInfo)
    assert eager.position["s"].dtype == jnp.float32


@pytest.mark.parametrize("make_kernel", KERNELS, ids=KERNEL_IDS)
def test_traced_inverse_temperature(make_kernel):
    """A vmapped ladder of β gives the same sweeps as one kernel per Python β."""
    model = IsingLattice((4, 4))
    params = ising_params()
    betas = [0.1, 0.4, 0.9]
    state = make_kernel(model).init(jax.random.key(0), {"s": jnp.ones((4, 4))}, params)

    def step(beta):
        return make_kernel(model, beta).step(jax.random.key(1), state, params)[0]

    ladder = jax.jit(jax.vmap(step))(jnp.asarray(betas))
    for i, beta in enumerate(betas):
        np.testing.assert_array_equal(ladder.position["s"][i], step(beta).position["s"])


@pytest.mark.parametrize("make_kernel", KERNELS, ids=KERNEL_IDS)
def test_kernel_sees_changed_params(make_kernel):
    model = IsingLattice((4, 4))
    kernel = make_kernel(model)
    params = model.init_params()
    state = kernel.init(jax.random.key(0), {"s": random_spins((4, 4), 1, 5)[0]}, params)
    step = jax.jit(kernel.step)
    up = ising_params(0.0, 30.0)
    down = ising_params(0.0, -30.0)
    np.testing.assert_array_equal(
        step(jax.random.key(1), state, up)[0].position["s"], 1
    )
    np.testing.assert_array_equal(
        step(jax.random.key(1), state, down)[0].position["s"], -1
    )
    assert step._cache_size() == 1


def test_flip_rates_at_infinite_temperature():
    """At β = 0 Metropolis accepts every flip; the heat bath flips half the spins."""
    params = ising_params()
    spins, rates = sampler(checkerboard_metropolis, (8, 8), 51)(
        jax.random.key(2), jnp.ones((4, 8, 8)), params, 0.0
    )
    np.testing.assert_array_equal(rates, 1.0)
    np.testing.assert_array_equal(spins, -1.0)
    _, rates = sampler(checkerboard_heat_bath, (8, 8), 51)(
        jax.random.key(2), jnp.ones((100, 8, 8)), params, 0.0
    )
    assert float(rates.mean()) == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("make_kernel", KERNELS, ids=KERNEL_IDS)
def test_kernels_reject_unsuitable_models(make_kernel):
    with pytest.raises(ValueError, match="even side lengths"):
        make_kernel(IsingLattice((5, 4)))
    with pytest.raises(ValueError, match="even side lengths"):
        make_kernel(IsingLattice((4, 4, 3)))
    with pytest.raises(TypeError, match="local_field"):
        make_kernel(BernoulliRBM(4, 2))
    plain = EnergyModel.from_energy_fn(
        lambda p, x: -jnp.sum(x), {}, shape=(4, 4), domain=(0.0, 1.0)
    )
    plain.local_field = lambda params, s: s
    with pytest.raises(TypeError, match="±1 spins"):
        make_kernel(plain)


@pytest.mark.parametrize(
    "kernel_class", [CheckerboardHeatBath, CheckerboardMetropolis], ids=KERNEL_IDS
)
def test_kernel_runs_under_numpyro_mcmc(kernel_class):
    model = IsingLattice((4, 6))
    mcmc = MCMC(
        kernel_class(model, 0.4),
        num_warmup=20,
        num_samples=100,
        num_chains=4,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(
        jax.random.key(0), model.init_params(), init_params={"s": jnp.ones((4, 4, 6))}
    )
    samples = mcmc.get_samples(group_by_chain=True)
    assert samples["s"].shape == (4, 100, 4, 6)
    assert set(np.unique(samples["s"])) == {-1.0, 1.0}

    tree = arviz_base.from_numpyro(mcmc)
    assert tree.posterior["s"].dims == ("chain", "draw", "s_dim_0", "s_dim_1")
    assert tree.posterior["s"].shape == (4, 100, 4, 6)


def exact_maximum_likelihood(shape, data):
    """(J, h) maximising the exact log-likelihood of ``data``, by enumeration."""
    bonds, mags = bond_and_magnetisation(shape)
    axes = tuple(range(1, len(shape) + 1))
    data_bonds = sum(data * np.roll(data, 1, axis) for axis in axes).sum(axis=axes)
    data_mean = np.array([data_bonds.mean(), data.sum(axis=axes).mean()])

    def negative_log_likelihood(theta):
        log_weight = theta[0] * bonds + theta[1] * mags
        shift = log_weight.max()
        return shift + np.log(np.exp(log_weight - shift).sum()) - theta @ data_mean

    return optimize.minimize(negative_log_likelihood, np.zeros(2)).x


def test_learner_fits_coupling_and_field():
    """PCD with the checkerboard kernel reaches the exact maximum-likelihood (J, h)."""
    shape, coupling, field = (4, 4), 0.35, 0.1
    probs = state_probs(shape, 1.0, coupling, field)
    rng = np.random.default_rng(4)
    data = all_spins(shape)[rng.choice(probs.size, size=2000, p=probs)]
    mle = exact_maximum_likelihood(shape, data)
    model = IsingLattice(shape, coupling=0.0, field=0.0)
    learner = MaximumLikelihood(
        model,
        optax.adam(optax.linear_schedule(0.05, 0.002, 200)),
        kernel=checkerboard_heat_bath(model),
        num_chains=200,
        num_sweeps=2,
    )
    result = learner.run(
        jax.random.key(5), data, num_epochs=10, batch_size=100, progress_bar=False
    )
    fitted = model.constrain(result.params)
    # Adam's last steps (learning rate 0.002 to 0.01) and the chains' noise leave
    # the iterate within about 0.015 of the optimum; 0.03 is twice that.
    assert float(fitted["coupling"]) == pytest.approx(mle[0], abs=0.03)
    assert float(fitted["field"]) == pytest.approx(mle[1], abs=0.03)


# -- the example ---------------------------------------------------------------


def test_ising_sampling_example_small(tmp_path, monkeypatch):
    argv = [
        "--size", "8",
        "--temperatures", "2.0", "3.0",
        "--chains", "4",
        "--burn-in", "20",
        "--sweeps", "100",
        "--output", str(tmp_path),
        "--no-progress",
    ]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["ising_sampling.py", *argv])
    module = runpy.run_path(str(EXAMPLES / "ising_sampling.py"))
    metrics = module["main"](argv)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["max_abs_error_in_standard_errors"] == pytest.approx(
        metrics["max_abs_error_in_standard_errors"]
    )
    rows = written["temperatures"]
    assert [row["temperature"] for row in rows] == [2.0, 3.0]
    for row in rows:
        assert row["energy_per_spin"]["exact"] == pytest.approx(
            torus_energy_per_spin((8, 8), 1 / row["temperature"])
        )
        assert row["energy_per_spin"]["standard_error"] > 0
    # |m| has an exact (infinite-lattice) value below T_c only.
    assert rows[0]["abs_magnetisation"]["exact_infinite_lattice"] is not None
    assert rows[1]["abs_magnetisation"]["exact_infinite_lattice"] is None
    assert (tmp_path / "ising_sampling.png").exists()
