import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from numpyro_ebm.diagnostics import (
    RHAT_THRESHOLD,
    ChainsNotMixedWarning,
    chain_summary,
    check_mixing,
    fantasy_trace,
    plot_learning_curves,
    plot_particles,
)
from numpyro_ebm.kernels import block_gibbs, site_gibbs
from numpyro_ebm.learning import MaximumLikelihood
from numpyro_ebm.models import BernoulliRBM, EnergyModel


def ferromagnet(num_spins=12, coupling=1.0):
    """All-to-all ferromagnet: two modes, all up and all down, separated by a barrier."""

    def energy(params, s):
        return -params["coupling"] * (jnp.sum(s) ** 2 - num_spins) / 2

    return EnergyModel.from_energy_fn(
        energy, {"coupling": jnp.asarray(coupling)}, shape=num_spins, domain=(-1.0, 1.0)
    )


def init_chains(kernel, params, position, seed=0):
    count = position.shape[0]
    keys = jax.random.split(jax.random.key(seed), count)
    return jax.vmap(kernel.init, (0, 0, None))(keys, {"x": position}, params)


def test_trace_flags_chains_stuck_in_separate_modes():
    # At coupling 0.25 a spin flip out of a mode costs 5.5 and crossing the
    # barrier 18, so chains fluctuate within their mode but never cross.
    model = ferromagnet(coupling=0.25)
    params = model.init_params()
    kernel = site_gibbs(model)
    start = jnp.concatenate([jnp.ones((4, 12)), -jnp.ones((4, 12))])
    chains = init_chains(kernel, params, start)
    trace = fantasy_trace(
        jax.random.key(1),
        model,
        kernel,
        chains,
        params,
        num_sweeps=200,
        statistics={"magnetisation": lambda x: jnp.mean(x["x"])},
    )
    with pytest.warns(ChainsNotMixedWarning, match="have not mixed"):
        result = check_mixing(trace)
    assert result["max_rhat"] > RHAT_THRESHOLD
    assert result["mixed"] == 0.0


def test_trace_flags_frozen_chains():
    model = ferromagnet(coupling=2.0)
    params = model.init_params()
    kernel = site_gibbs(model)
    start = jnp.concatenate([jnp.ones((2, 12)), -jnp.ones((2, 12))])
    chains = init_chains(kernel, params, start)
    trace = fantasy_trace(
        jax.random.key(1), model, kernel, chains, params, num_sweeps=50
    )
    with pytest.warns(ChainsNotMixedWarning):
        result = check_mixing(trace)
    # Both modes have the same energy, so every energy trace is constant.
    assert result["max_rhat"] == np.inf
    assert result["mixed"] == 0.0


def test_trace_passes_well_mixed_chains():
    rbm = BernoulliRBM(6, 2)
    params = rbm.init_params()
    kernel = block_gibbs(rbm)
    keys = jax.random.split(jax.random.key(0), 8)
    chains = jax.vmap(kernel.init, (0, 0, None))(keys, {"v": jnp.zeros((8, 6))}, params)
    trace = fantasy_trace(
        jax.random.key(1), rbm, kernel, chains, params, num_sweeps=400
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ChainsNotMixedWarning)
        result = check_mixing(trace)
    assert result["max_rhat"] < RHAT_THRESHOLD
    assert result["mixed"] == 1.0


def test_trace_layout_and_sample_stats():
    rbm = BernoulliRBM(6, 2)
    params = rbm.init_params()
    kernel = block_gibbs(rbm)
    keys = jax.random.split(jax.random.key(0), 3)
    chains = jax.vmap(kernel.init, (0, 0, None))(keys, {"v": jnp.zeros((3, 6))}, params)
    trace = fantasy_trace(
        jax.random.key(1),
        rbm,
        kernel,
        chains,
        params,
        num_sweeps=20,
        include_sites=True,
    )
    assert trace.posterior["energy"].dims == ("chain", "draw")
    assert trace.posterior["v"].shape == (3, 20, 6)
    assert trace.sample_stats["hidden_activation"].shape == (3, 20)
    # Energies recorded are those of the recorded configurations.
    v = trace.posterior["v"].values.reshape(-1, 6)
    np.testing.assert_allclose(
        trace.posterior["energy"].values.ravel(),
        rbm.energy(params, jnp.asarray(v)),
        rtol=1e-5,
    )
    summary = chain_summary(trace, var_names=["energy"])
    assert {"r_hat", "ess_bulk", "ess_tail"} <= set(summary.columns)


def test_trace_rejects_too_few_sweeps():
    rbm = BernoulliRBM(4, 1)
    kernel = block_gibbs(rbm)
    chains = jax.vmap(kernel.init, (0, 0, None))(
        jax.random.split(jax.random.key(0), 2),
        {"v": jnp.zeros((2, 4))},
        rbm.init_params(),
    )
    with pytest.raises(
        ValueError, match="`num_sweeps` must be an integer of at least 4; got 2"
    ):
        fantasy_trace(
            jax.random.key(0), rbm, kernel, chains, rbm.init_params(), num_sweeps=2
        )


def test_plots_write_png(tmp_path):
    rbm = BernoulliRBM(16, 2)
    data = np.random.default_rng(0).integers(0, 2, size=(40, 16))
    learner = MaximumLikelihood(rbm, optax.sgd(0.05), num_chains=10)
    result = learner.run(
        jax.random.key(0),
        data,
        num_epochs=2,
        batch_size=10,
        metrics={"zero": lambda p: 0.0},
        progress_bar=False,
    )
    fig = plot_particles(
        {"fantasy": result.chains.position["v"], "data": data},
        (4, 4),
        path=tmp_path / "particles.png",
    )
    assert len(fig.axes) == 2
    fig = plot_learning_curves(
        result.history,
        updates_per_epoch=4,
        reference_lines={"baseline": -1.0},
        path=tmp_path / "curves.png",
    )
    assert len(fig.axes) == 2
    assert (tmp_path / "particles.png").stat().st_size > 1000
    assert (tmp_path / "curves.png").stat().st_size > 1000
