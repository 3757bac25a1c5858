import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import xarray

from numpyro_ebm.diagnostics import (
    RHAT_THRESHOLD,
    ChainsNotMixedWarning,
    EnergyGapWarning,
    ParameterGrowthWarning,
    SaturationWarning,
    TrainingMonitor,
    stationarity_check,
    statistics_drift_check,
)
from numpyro_ebm.diagnostics.stationarity import run_kernel
from numpyro_ebm.diagnostics.thresholds import (
    check_energy_gap,
    check_parameters,
    check_saturation,
)
from numpyro_ebm.kernels import block_gibbs, site_gibbs
from numpyro_ebm.learning import LearnerState, MaximumLikelihood
from numpyro_ebm.models import BernoulliRBM, EnergyModel

from conftest import rbm_params


class BiasedRBM(BernoulliRBM):
    """An RBM whose visible conditional is shifted: block Gibbs on it is a wrong kernel."""

    def visible_logits(self, params, h):
        return super().visible_logits(params, h) + 0.3


def ferromagnet(num_spins=12, coupling=0.25):
    def energy(params, s):
        return -params["coupling"] * (jnp.sum(s) ** 2 - num_spins) / 2

    return EnergyModel.from_energy_fn(
        energy, {"coupling": jnp.asarray(coupling)}, shape=num_spins, domain=(-1.0, 1.0)
    )


def state_for(model, kernel, params, position, seed=0):
    count = position.shape[0]
    keys = jax.random.split(jax.random.key(seed), count)
    name = model.visible_sites[0].name
    chains = jax.vmap(kernel.init, (0, 0, None))(keys, {name: position}, params)
    return LearnerState(
        params, None, chains, jax.random.key(seed), jnp.zeros((), jnp.int32)
    )


def test_monitor_flags_bimodal_model():
    """Data in the all-up mode, noise chains fall into either mode and never cross."""
    model = ferromagnet()
    params = model.init_params()
    kernel = site_gibbs(model)
    data = np.ones((50, 12))
    monitor = TrainingMonitor(
        model,
        kernel,
        jax.random.key(0),
        data=data,
        num_sweeps=100,
        num_chains=16,
        statistics={"magnetisation": lambda x: jnp.mean(x["x"])},
    )
    state = state_for(
        model, kernel, params, jnp.concatenate([jnp.ones((8, 12)), -jnp.ones((8, 12))])
    )
    with pytest.warns(ChainsNotMixedWarning):
        summary = monitor.checkpoint(1, state)
    assert summary["max_rhat"] > RHAT_THRESHOLD
    assert summary["mixed"] == 0.0


def test_monitor_data_versus_noise_disagree_on_bimodal_model():
    # With a field favouring the up mode weakly, data sit in the down mode; chains
    # from noise mostly fall into the up mode and cannot cross within the trace.
    def energy(params, s):
        return -params["coupling"] * (jnp.sum(s) ** 2 - 12) / 2 - params[
            "field"
        ] * jnp.sum(s)

    model = EnergyModel.from_energy_fn(
        energy,
        {"coupling": jnp.asarray(0.4), "field": jnp.asarray(0.2)},
        shape=12,
        domain=(-1.0, 1.0),
    )
    kernel = site_gibbs(model)
    monitor = TrainingMonitor(
        model,
        kernel,
        jax.random.key(0),
        data=-np.ones((20, 12)),
        num_sweeps=100,
        num_chains=16,
    )
    state = state_for(model, kernel, model.init_params(), jnp.ones((16, 12)))
    with pytest.warns(ChainsNotMixedWarning, match="from data and from noise disagree"):
        summary = monitor.checkpoint(1, state)
    assert summary["rhat_data_vs_noise"] > RHAT_THRESHOLD
    assert abs(summary["z_data_vs_noise"]) > 3


def test_monitor_passes_well_mixed_model():
    rbm = BernoulliRBM(6, 2)
    params = rbm.init_params()
    kernel = block_gibbs(rbm)
    data = np.random.default_rng(0).integers(0, 2, size=(50, 6))
    monitor = TrainingMonitor(
        rbm, kernel, jax.random.key(0), data=data, num_sweeps=400, num_chains=16
    )
    state = state_for(rbm, kernel, params, jnp.zeros((16, 6)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = monitor.checkpoint(1, state)
    assert summary["max_rhat"] < RHAT_THRESHOLD
    assert summary["rhat_data_vs_noise"] < RHAT_THRESHOLD
    assert summary["autocorrelation_time"] < 3


def test_monitor_records_log_spaced_epochs_and_round_trips(tmp_path):
    rbm = BernoulliRBM(6, 2)
    data = np.random.default_rng(1).integers(0, 2, size=(40, 6))
    learner = MaximumLikelihood(rbm, optax.sgd(0.05), num_chains=8)
    monitor = TrainingMonitor(
        rbm, learner.kernel, jax.random.key(1), data=data, num_sweeps=50, warn=False
    )
    result = learner.run(
        jax.random.key(2),
        data,
        num_epochs=5,
        batch_size=10,
        progress_bar=False,
        callbacks=[monitor],
    )
    assert sorted(monitor.summaries) == [1, 2, 4]
    tree = monitor.to_datatree(result.history)
    assert tree["checkpoints/epoch_0004/posterior"]["energy"].shape == (8, 50)
    assert list(tree["data_vs_noise/epoch_0002/posterior"]["start"].values[:1]) == [
        "data"
    ]
    np.testing.assert_array_equal(tree["summary"]["epoch"].values, [1, 2, 4])
    assert tree["history"]["energy_gap"].shape == (20,)

    path = tmp_path / "monitor.nc"
    tree.to_netcdf(path, engine="h5netcdf")
    loaded = xarray.open_datatree(path, engine="h5netcdf")
    assert set(loaded.groups) == set(tree.groups)
    for group in tree.groups:
        xarray.testing.assert_identical(
            loaded[group].to_dataset(), tree[group].to_dataset()
        )


@pytest.mark.parametrize(
    "make_kernel", [block_gibbs, site_gibbs], ids=["block", "site"]
)
def test_stationarity_check_passes_exact_kernels(make_kernel):
    rbm = BernoulliRBM(5, 3)
    params = rbm_params(5, 3, seed=1)
    result = stationarity_check(jax.random.key(0), rbm, make_kernel(rbm), params)
    assert result.passed
    assert result.total_variation < 2 * result.noise_floor


def test_stationarity_check_catches_biased_kernel():
    rbm = BernoulliRBM(5, 3)
    params = rbm_params(5, 3, seed=1)
    wrong = block_gibbs(BiasedRBM(5, 3))
    result = stationarity_check(jax.random.key(0), rbm, wrong, params)
    assert not result.passed
    assert result.total_variation > 3 * result.noise_floor


def test_stationarity_check_rejects_large_model():
    rbm = BernoulliRBM(20, 2)
    with pytest.raises(ValueError, match="statistics_drift_check"):
        stationarity_check(jax.random.key(0), rbm, block_gibbs(rbm), rbm.init_params())


def test_drift_check_on_long_run_chains():
    rbm = BernoulliRBM(30, 5)
    params = rbm_params(30, 5, seed=2, scale=0.5)
    kernel = block_gibbs(rbm)
    stats = {"active": lambda x: jnp.sum(x["v"])}
    chains = run_kernel(
        jax.random.key(0), kernel, {"v": jnp.zeros((2000, 30))}, params, 200
    )
    result = statistics_drift_check(
        jax.random.key(1), rbm, kernel, chains, params, num_steps=20, statistics=stats
    )
    assert result.passed
    wrong = block_gibbs(BiasedRBM(30, 5))
    biased = statistics_drift_check(
        jax.random.key(1), rbm, wrong, chains, params, num_steps=20, statistics=stats
    )
    assert not biased.passed
    assert biased.z_scores["active"] > 4


def test_saturation_warning():
    saturated = np.concatenate(
        [np.full((100, 3), 0.999), np.full((100, 1), 0.5)], axis=1
    )
    with pytest.warns(SaturationWarning, match="75% of the hidden units"):
        result = check_saturation(saturated, epoch=3)
    assert result["saturated_fraction"] == 0.75
    assert (
        check_saturation(np.full((100, 4), 0.5), epoch=3)["saturated_fraction"] == 0.0
    )


def test_parameter_growth_warning():
    with pytest.warns(
        ParameterGrowthWarning, match="'weights' reached magnitude 2e\\+03"
    ):
        check_parameters({"weights": np.array([2000.0]), "bias": np.zeros(2)}, epoch=5)


def test_energy_gap_warning():
    with pytest.warns(EnergyGapWarning, match="widened"):
        assert check_energy_gap([0.1, 0.15, 0.3, 0.6, 1.2], epoch=16)
    assert not check_energy_gap([0.5, 0.4, 0.6, 0.5, 0.55], epoch=16, warn=False)
