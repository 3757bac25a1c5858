"""Annealed importance sampling against exact log Z.

Unless stated otherwise a check is |log Ẑ − log Z| < 3 standard errors, which an
unbiased, normally distributed estimate fails with probability 0.27 %; AIS is
biased low by an amount that shrinks as the schedule gets finer, so the schedules
here are long enough for the bias to sit well inside that band.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from numpyro_ebm.data import load_binary_digits
from numpyro_ebm.estimators import log_partition
from numpyro_ebm.estimators.ais import (
    ais,
    ais_log_likelihood,
    ais_metric,
    check_schedule,
    default_schedule,
    reverse_ais,
    summarise_log_weights,
)
from numpyro_ebm.estimators.paths import base_rate_logits, geometric_path, rbm_path
from numpyro_ebm.learning import MaximumLikelihood
from numpyro_ebm.models import BernoulliRBM, EnergyModel
from numpyro_ebm.models.enumeration import decode_configurations
from numpyro_ebm.models.rbm import base_rate_bias

from conftest import rbm_params

# ln Z of the 4×4 periodic Ising model (J = 1, no field), computed by enumerating
# all 65,536 states.
ISING_4X4_LOG_Z = {
    0.3: 12.7855233257,
    0.440686793509771: 15.5219154588,
    0.6: 20.0565328843,
}


def ising_4x4(beta):
    def energy(params, s):
        grid = s.reshape(4, 4)
        bonds = grid * jnp.roll(grid, 1, 0) + grid * jnp.roll(grid, 1, 1)
        return -params["beta"] * jnp.sum(bonds)

    return EnergyModel.from_energy_fn(
        energy, {"beta": jnp.asarray(beta)}, shape=16, domain=(-1.0, 1.0)
    )


@pytest.mark.parametrize(("seed", "scale"), [(0, 0.3), (1, 0.7), (2, 1.0)])
def test_ais_matches_exact_random_rbm(seed, scale):
    rbm = BernoulliRBM(20, 12)
    params = rbm_params(20, 12, seed=seed, scale=scale)
    exact = float(log_partition(rbm, params))
    result = ais(
        jax.random.key(seed), rbm_path(rbm), params, num_runs=100, num_betas=2000
    )
    assert abs(float(result.log_z) - exact) < 3 * float(result.standard_error)
    assert float(result.effective_sample_size) > 10


def trained_digits_rbm(num_hidden=16, epochs=10):
    train, test, _, _ = load_binary_digits()
    rbm = BernoulliRBM(64, num_hidden, visible_bias=base_rate_bias(train))
    learner = MaximumLikelihood(rbm, optax.sgd(0.05), num_chains=100)
    result = learner.run(
        jax.random.key(0), train, num_epochs=epochs, batch_size=10, progress_bar=False
    )
    return rbm, result, train, test


@pytest.fixture(scope="module")
def digits_rbm():
    return trained_digits_rbm()


def test_ais_log_likelihood_matches_exact_on_digits(digits_rbm):
    rbm, result, train, test = digits_rbm
    params = result.params
    path = rbm_path(rbm, base_visible_bias=base_rate_bias(train))
    estimate_z = ais(jax.random.key(1), path, params, num_runs=100, num_betas=2000)
    exact_z = float(log_partition(rbm, params))
    assert abs(float(estimate_z.log_z) - exact_z) < 3 * float(estimate_z.standard_error)

    estimate = ais_log_likelihood(rbm, params, test, estimate_z)
    exact = -float(jnp.mean(rbm.energy(params, test))) - exact_z
    assert abs(float(estimate.value) - exact) < 3 * float(estimate.standard_error)
    np.testing.assert_allclose(estimate.per_dimension, estimate.value / 64, rtol=1e-6)


def exact_visible_samples(rbm, params, count, seed):
    """Exact samples of a 16-hidden RBM: h from its enumerated marginal, then v | h."""
    hidden = decode_configurations(rbm.latent_sites, jnp.arange(2**rbm.num_hidden))["h"]
    probs = np.asarray(
        jax.nn.softmax(-rbm.hidden_free_energy(params, hidden)), np.float64
    )
    rng = np.random.default_rng(seed)
    h = hidden[rng.choice(probs.size, size=count, p=probs / probs.sum())]
    v = jax.random.bernoulli(jax.random.key(seed), rbm.visible_probs(params, h))
    return {"v": v.astype(float)}


def test_forward_and_reverse_ais_bracket_exact(digits_rbm):
    """Forward AIS is biased low and reverse AIS high, so together they bracket log Z.

    The bias dominates the noise on a coarse schedule (100 inverse temperatures,
    20 runs, uniform base) for the trained digits RBM: 15 of 20 seeds bracket
    the exact value and the test requires at least 13. Reverse AIS starts from
    exact samples.
    """
    rbm, result, _, _ = digits_rbm
    params = result.params
    exact = float(log_partition(rbm, params))
    path = rbm_path(rbm)
    below = above = bracketed = 0
    for seed in range(20):
        start = exact_visible_samples(rbm, params, 20, seed)
        forward = float(
            ais(jax.random.key(seed), path, params, num_runs=20, num_betas=100).log_z
        )
        backward = reverse_ais(
            jax.random.key(100 + seed), path, params, start, num_betas=100
        )
        below += forward <= exact
        above += float(backward.log_z) >= exact
        bracketed += forward <= exact <= float(backward.log_z)
    assert below >= 14
    assert above >= 14
    assert bracketed >= 13


@pytest.mark.parametrize("beta", sorted(ISING_4X4_LOG_Z))
def test_ais_ising_4x4_log_z(beta):
    model = ising_4x4(beta)
    path = geometric_path(model)
    result = ais(
        jax.random.key(0), path, model.init_params(), num_runs=200, num_betas=1000
    )
    exact = ISING_4X4_LOG_Z[beta]
    assert abs(float(result.log_z) - exact) < 3 * float(result.standard_error)
    assert float(result.standard_error) < 0.05


@pytest.mark.parametrize("num_betas", [10, 100, 1000])
def test_ais_estimate_does_not_drift_with_path_length(num_betas):
    """A target with a known normaliser: independent units with fields.

    AIS averages the weights over runs, so every schedule length gives an
    unbiased Ẑ. Averaging over steps instead would drift with the length.
    """
    fields = jnp.array([1.5, -0.5, 2.0, 0.0, -2.5, 0.7])
    model = EnergyModel.from_energy_fn(lambda p, x: -p["h"] @ x, {"h": fields}, shape=6)
    exact = float(jnp.sum(jax.nn.softplus(fields)))
    result = ais(
        jax.random.key(3),
        geometric_path(model),
        model.init_params(),
        num_runs=400,
        num_betas=num_betas,
    )
    assert abs(float(result.log_z) - exact) < 3 * float(result.standard_error)


def test_base_rate_path_equal_weights():
    """With the base fitted to the model's own marginals the weights are all equal."""
    fields = jnp.array([1.0, -1.0, 0.5])
    model = EnergyModel.from_energy_fn(lambda p, x: -p["h"] @ x, {"h": fields}, shape=3)
    probs = jax.nn.sigmoid(fields)
    logits = {"x": jnp.log(jnp.stack([1 - probs, probs], axis=-1))}
    result = ais(
        jax.random.key(0),
        geometric_path(model, logits),
        model.init_params(),
        num_runs=10,
        num_betas=5,
    )
    np.testing.assert_allclose(result.log_weights, result.log_weights[0], atol=1e-5)
    np.testing.assert_allclose(
        result.log_z, jnp.sum(jax.nn.softplus(fields)), rtol=1e-5
    )


def test_base_rate_logits_match_frequencies():
    model = EnergyModel.from_energy_fn(lambda p, x: 0.0 * x.sum(), {}, shape=2)
    data = np.array([[1, 0], [1, 1], [1, 0], [0, 0]])
    logits = base_rate_logits(model, data, pseudocount=0.0)
    np.testing.assert_allclose(
        jnp.exp(logits["x"]), [[0.25, 0.75], [0.75, 0.25]], rtol=1e-6
    )


def test_summarise_log_weights_is_stable():
    log_w = jnp.array([1000.0, 1000.0, 999.0])
    log_mean, se, ess = summarise_log_weights(log_w)
    expected = 1000.0 + np.log((2 + np.exp(-1.0)) / 3)
    np.testing.assert_allclose(log_mean, expected, rtol=1e-6)
    assert np.isfinite(float(se))
    assert 2.0 < float(ess) < 3.0


def test_schedule_validation():
    betas = default_schedule(100)
    assert betas.shape == (100,)
    assert np.all(np.diff(betas) >= 0)
    # More than half of the steps lie above 0.9, where the path is steepest.
    assert np.mean(betas > 0.9) > 0.5
    with pytest.raises(ValueError, match="start at 0 and end at 1"):
        check_schedule([0.1, 1.0])
    with pytest.raises(ValueError, match="non-decreasing"):
        check_schedule([0.0, 0.6, 0.5, 1.0])
    with pytest.raises(ValueError, match="`num_betas`"):
        default_schedule(1)


def test_ais_rejects_too_few_runs():
    rbm = BernoulliRBM(4, 2)
    with pytest.raises(ValueError, match="`num_runs` must be an integer of at least 2"):
        ais(jax.random.key(0), rbm_path(rbm), rbm.init_params(), num_runs=1)


def test_ais_metric_in_learner():
    rbm = BernoulliRBM(8, 3)
    data = np.random.default_rng(0).integers(0, 2, size=(40, 8))
    metric = ais_metric(
        rbm,
        rbm_path(rbm),
        {"train": data},
        jax.random.key(0),
        num_runs=20,
        num_betas=50,
    )
    learner = MaximumLikelihood(rbm, optax.sgd(0.05), num_chains=10)
    result = learner.run(
        jax.random.key(1),
        data,
        num_epochs=2,
        batch_size=10,
        metrics=metric,
        progress_bar=False,
    )
    assert result.history.metrics["train_log_likelihood"].shape == (2,)
    assert np.all(result.history.metrics["train_log_likelihood_se"] >= 0)
