"""Maximum-likelihood training of continuous and mixed energy models.

The fitted parameters are compared with the closed-form maximum-likelihood
estimates of the training sample, not with the generating parameters. The
only errors are then the Monte Carlo noise of the fantasy particles and the
optimiser's residual. With these settings both stay well below the 2 %
tolerances: about 0.5 % for the Gaussian covariance with HMC (seeds fixed).
"""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
import pytest
from numpyro.distributions import biject_to, constraints

from numpyro_ebm.kernels.hmc import hmc, nuts
from numpyro_ebm.kernels.langevin import mala
from numpyro_ebm.kernels.mixed import gaussian_block_gibbs, mixed_gibbs
from numpyro_ebm.kernels.replay import replay
from numpyro_ebm.learning import MaximumLikelihood, Penalty, TrainingDivergedError
from numpyro_ebm.models import EnergyModel
from numpyro_ebm.models.gaussian import (
    GaussianBernoulliRBM,
    GaussianEnergy,
    gaussian_parameters,
)
from numpyro_ebm.models.neural import mlp_energy_model

DIM = 5
TOLERANCE = 0.02


def gaussian_data():
    rng = np.random.default_rng(0)
    factor = 0.5 * rng.normal(size=(DIM, DIM))
    covariance = factor @ factor.T + 0.5 * np.eye(DIM)
    mean = np.array([1.0, 2.0, -1.0, 0.5, 3.0])
    return rng.multivariate_normal(mean, covariance, size=1000).astype(np.float32)


def relative_error(estimate, reference):
    estimate, reference = np.asarray(estimate), np.asarray(reference)
    return np.linalg.norm(estimate - reference) / np.linalg.norm(reference)


def fit_gaussian(make_kernel, seed=0, num_epochs=200, early_epochs=None):
    """2000 Adam updates on minibatches of 100 with 1000 chains.

    With ``early_epochs`` the run stops after that many epochs and continues
    from the state, so both results come from one compiled update.
    """
    data = gaussian_data()
    model = GaussianEnergy(DIM)
    schedule = optax.exponential_decay(0.05, transition_steps=300, decay_rate=0.3)
    learner = MaximumLikelihood(
        model, optax.adam(schedule), kernel=make_kernel(model), num_chains=1000
    )
    options = dict(batch_size=100, progress_bar=False)
    early = None
    if early_epochs is not None:
        early = learner.run(
            jax.random.key(seed),
            data,
            num_epochs=early_epochs,
            chains_from_data=True,
            **options,
        )
        num_epochs -= early_epochs
    result = learner.run(
        jax.random.key(seed),
        data,
        num_epochs=num_epochs,
        init_state=None if early is None else early.state,
        chains_from_data=True,
        **options,
    )
    return data, model, learner, result, early


@pytest.fixture(scope="module")
def hmc_fit():
    return fit_gaussian(lambda model: hmc(model, step_size=0.3), early_epochs=2)


def check_gaussian_mle(data, model, params):
    sample_mean = data.mean(axis=0)
    sample_covariance = np.cov(data.T, bias=True)
    assert relative_error(model.mean(params), sample_mean) < TOLERANCE
    assert relative_error(model.covariance(params), sample_covariance) < TOLERANCE


def test_gaussian_mle_with_hmc(hmc_fit):
    data, model, _, result, _ = hmc_fit
    check_gaussian_mle(data, model, result.params)


def test_gaussian_fit_check_has_power(hmc_fit):
    """After 20 updates instead of 2000 the covariance is still off by over 2 %."""
    data, model, _, _, early = hmc_fit
    error = relative_error(model.covariance(early.params), np.cov(data.T, bias=True))
    assert error > TOLERANCE


def test_gaussian_mle_with_mala():
    data, model, _, result, _ = fit_gaussian(lambda m: mala(m, step_size=0.3))
    check_gaussian_mle(data, model, result.params)


@pytest.mark.slow
def test_gaussian_mle_with_nuts():
    data, model, _, result, _ = fit_gaussian(lambda m: nuts(m, step_size=0.3))
    check_gaussian_mle(data, model, result.params)


def test_history_tracks_acceptance_and_step_size(hmc_fit):
    _, _, _, result, early = hmc_fit
    info = result.history.kernel_info
    for field in ("acceptance_rate", "step_size", "num_steps", "diverging"):
        assert info[field].shape == (1980,)
    # The controller needs a few dozen updates to move the step size from 0.3.
    late = info["acceptance_rate"][200:]
    assert abs(float(np.mean(late)) - 0.8) < 0.03
    assert np.all(late > 0.6)
    assert info["step_size"][-1] > early.history.kernel_info["step_size"][0]
    assert np.all(info["num_steps"] == 5)
    assert float(np.max(info["diverging"])) == 0.0


def test_hmc_training_compiles_once(hmc_fit):
    """Two runs, the second resumed from the first, share one compiled epoch."""
    _, _, learner, _, _ = hmc_fit
    assert learner._jit_epoch._cache_size() == 1


@pytest.mark.slow
def test_nuts_training_compiles_once():
    data = gaussian_data()[:200]
    model = GaussianEnergy(DIM)
    learner = MaximumLikelihood(
        model, optax.adam(0.01), kernel=nuts(model, max_tree_depth=4), num_chains=32
    )
    result = learner.run(
        jax.random.key(0), data, num_epochs=2, batch_size=50, progress_bar=False
    )
    learner.run(
        jax.random.key(1),
        data,
        num_epochs=1,
        batch_size=50,
        init_state=result.state,
        progress_bar=False,
    )
    assert learner._jit_epoch._cache_size() == 1
    assert result.history.kernel_info["num_steps"].min() >= 1


def test_learner_chains_follow_updated_params():
    """Each update's sweeps use the θ of the learner state passed in."""
    model = GaussianEnergy(2)
    learner = MaximumLikelihood(
        model,
        optax.sgd(0.0),
        kernel=hmc(model, step_size=0.2),
        num_chains=200,
        num_sweeps=10,
    )
    state = learner.init(jax.random.key(0), init_position=jnp.zeros((200, 2)))
    batch = {"x": jnp.zeros((4, 2))}
    update = jax.jit(learner.update)
    for target in (4.0, -4.0, 4.0):
        params = gaussian_parameters(model, jnp.full(2, target), 0.2 * jnp.eye(2))
        state = state._replace(params=params)
        for _ in range(5):
            state, metrics = update(state, batch)
        assert abs(float(jnp.mean(state.chains.position["x"])) - target) < 0.25
        assert float(metrics.kernel_info["acceptance_rate"]) > 0.5
    assert update._cache_size() == 1


def exponential_model(dim):
    def model():
        rate = numpyro.param("rate", jnp.ones(dim), constraint=constraints.positive)
        x = numpyro.sample("x", dist.ImproperUniform(constraints.positive, (), (dim,)))
        numpyro.factor("neg_energy", -jnp.dot(rate, x))

    return EnergyModel.from_numpyro(model)


def test_exponential_mle_on_positive_support():
    """The learned rates match the closed-form MLE 1 / mean of each coordinate."""
    rates = np.array([0.5, 1.0, 3.0])
    rng = np.random.default_rng(1)
    data = rng.exponential(1 / rates, size=(1000, 3)).astype(np.float32)
    model = exponential_model(3)
    kernel = hmc(
        model, step_size=0.3, transforms={"x": biject_to(constraints.positive)}
    )
    schedule = optax.exponential_decay(0.05, transition_steps=300, decay_rate=0.3)
    learner = MaximumLikelihood(
        model, optax.adam(schedule), kernel=kernel, num_chains=1000
    )
    result = learner.run(
        jax.random.key(0),
        data,
        num_epochs=150,
        batch_size=100,
        chains_from_data=True,
        progress_bar=False,
    )
    learned = np.asarray(model.constrain(result.params)["rate"])
    mle = 1.0 / data.mean(axis=0)
    np.testing.assert_array_less(np.abs(learned / mle - 1.0), TOLERANCE)
    assert np.all(np.asarray(result.chains.position["x"]) > 0)


def gaussian_rbm_data(count=500):
    rng = np.random.default_rng(2)
    centres = np.array([[1.5, -1.0, 0.0], [-1.5, 1.0, 0.5]])
    labels = rng.integers(0, 2, size=count)
    return (centres[labels] + 0.5 * rng.normal(size=(count, 3))).astype(np.float32)


@pytest.mark.parametrize(
    "kernel_name", ["block", pytest.param("mixed", marks=pytest.mark.slow)]
)
def test_gaussian_rbm_trains_with_positive_variances(kernel_name):
    data = gaussian_rbm_data()
    rbm = GaussianBernoulliRBM(
        3, 2, init_scale=0.1, visible_bias=data.mean(0), visible_variance=data.var(0)
    )
    if kernel_name == "block":
        kernel = gaussian_block_gibbs(rbm)
    else:
        kernel = mixed_gibbs(rbm, "mala", step_size=0.3)
    learner = MaximumLikelihood(rbm, optax.adam(0.03), kernel=kernel, num_chains=100)
    result = learner.run(
        jax.random.key(0), data, num_epochs=10, batch_size=25, progress_bar=False
    )
    variance = np.asarray(rbm.visible_variance(result.params))
    assert np.all(variance > 0)
    # Two clusters of spread 0.5 along each axis: the per-unit variance shrinks
    # from the data variance (about 2.5 on the first unit) towards 0.25.
    assert variance[0] < 0.6 * data.var(0)[0]

    @jax.jit
    def log_likelihood(params):
        return -jnp.mean(rbm.free_energy(params, data)) - rbm.log_partition(params)

    initial = float(log_likelihood(rbm.init_params()))
    assert float(log_likelihood(result.params)) > initial + 0.3
    assert learner._jit_epoch._cache_size() == 1


def test_gaussian_rbm_large_learning_rate_raises():
    data = gaussian_rbm_data(100)
    rbm = GaussianBernoulliRBM(3, 2)
    learner = MaximumLikelihood(
        rbm, optax.sgd(1e6), kernel=gaussian_block_gibbs(rbm), num_chains=20
    )
    with pytest.raises(TrainingDivergedError, match="diverged at update") as error:
        learner.run(
            jax.random.key(0), data, num_epochs=5, batch_size=20, progress_bar=False
        )
    good = error.value.state.params
    assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(good))
    assert bool(jnp.all(rbm.visible_variance(good) > 0))


def test_neural_energy_trains_with_replay():
    rng = np.random.default_rng(3)
    data = (np.array([1.0, -1.0]) + 0.5 * rng.normal(size=(512, 2))).astype(np.float32)
    model = mlp_energy_model(jax.random.key(0), 2, (16,), base_scale=3.0)
    noise = {"x": dist.Uniform(-3.0, 3.0).expand([2]).to_event(1)}
    kernel = replay(mala(model, step_size=0.05), noise, restart_probability=0.05)
    penalty = Penalty(l2={"0/0": 1e-4}, energy_magnitude=1e-3)
    learner = MaximumLikelihood(
        model,
        optax.adam(3e-3),
        kernel=kernel,
        num_chains=256,
        num_sweeps=5,
        penalty=penalty,
    )
    result = learner.run(
        jax.random.key(1), data, num_epochs=40, batch_size=64, progress_bar=False
    )
    fantasy = np.asarray(result.chains.position["x"])
    np.testing.assert_allclose(fantasy.mean(axis=0), data.mean(axis=0), atol=0.3)
    # The wrapped MALA kernel's controller still runs under the replay buffer.
    step_size = result.history.kernel_info["step_size"]
    assert step_size[-1] > 2 * step_size[0]
    restarted = result.history.kernel_info["restarted"]
    # 160 updates with 5 % restarts of 128 chains: 0.05 ± 0.0015 on average.
    assert 0.03 < float(np.mean(restarted)) < 0.07
    layers = model.unflatten(result.params)
    assert layers[0][0].shape == (2, 16)
    assert learner._jit_epoch._cache_size() == 1
