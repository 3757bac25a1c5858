"""Every discrete kernel of the library passes the stationarity check.

`stationarity_check` starts 10,000 chains from exact samples (by enumeration),
runs a few steps, and applies a chi-square test at significance 1e-3, so an
exact kernel fails one of these tests with probability 1e-3; the seeds are
fixed. A kernel with a shifted conditional fails it (see test_monitor.py).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from numpyro_ebm.diagnostics import stationarity_check
from numpyro_ebm.kernels import (
    block_gibbs,
    checkerboard_heat_bath,
    checkerboard_metropolis,
    geometric_ladder,
    gibbs_with_gradients,
    local_field_gibbs,
    parallel_tempering,
    site_gibbs,
)
from numpyro_ebm.models import BernoulliRBM, IsingLattice, Potts, SpinGlass

from conftest import rbm_params


def rbm_case():
    return BernoulliRBM(5, 3), rbm_params(5, 3, seed=1)


def spin_glass_case():
    rng = np.random.default_rng(0)
    model = SpinGlass(8)
    params = {
        "couplings": jnp.asarray(0.5 * rng.normal(size=(8, 8)), dtype=float),
        "fields": jnp.asarray(0.3 * rng.normal(size=8), dtype=float),
    }
    return model, params


def potts_case():
    rng = np.random.default_rng(1)
    model = Potts(5, 3)
    params = {
        "fields": jnp.asarray(0.5 * rng.normal(size=(5, 3)), dtype=float),
        "couplings": jnp.asarray(0.5 * rng.normal(size=(5, 3, 5, 3)), dtype=float),
    }
    return model, params


def ising_case():
    model = IsingLattice((4, 4))
    params = dict(model.init_params(), coupling=jnp.asarray(0.4))
    return model, params


CASES = {
    "block_gibbs-rbm": (rbm_case, block_gibbs),
    "site_gibbs-rbm": (rbm_case, site_gibbs),
    "gibbs_with_gradients-rbm": (rbm_case, gibbs_with_gradients),
    "local_field_gibbs-spin_glass": (spin_glass_case, local_field_gibbs),
    "local_field_gibbs_random-potts": (
        potts_case,
        functools.partial(local_field_gibbs, scan="random"),
    ),
    "gibbs_with_gradients-spin_glass": (spin_glass_case, gibbs_with_gradients),
    "gibbs_with_gradients-potts": (potts_case, gibbs_with_gradients),
    "parallel_tempering-spin_glass": (
        spin_glass_case,
        lambda model: parallel_tempering(
            model,
            make_kernel=local_field_gibbs,
            inverse_temperatures=geometric_ladder(0.3, 3),
        ),
    ),
    "checkerboard_heat_bath-ising": (ising_case, checkerboard_heat_bath),
    "checkerboard_metropolis-ising": (ising_case, checkerboard_metropolis),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_passes_stationarity_check(name):
    make_case, make_kernel = CASES[name]
    model, params = make_case()
    result = stationarity_check(
        jax.random.key(0),
        model,
        make_kernel(model),
        params,
        num_chains=10000,
        num_steps=3,
    )
    assert result.passed, result
    assert result.total_variation < 1.5 * result.noise_floor
