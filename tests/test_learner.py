import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from numpyro_ebm.kernels import site_gibbs
from numpyro_ebm.learning import MaximumLikelihood, Penalty, TrainingDivergedError
from numpyro_ebm.models import BernoulliRBM, EnergyModel

from conftest import all_binary, brute_force_visible_probs


def exact_nll_gradient(rbm, params, data, weights):
    """Gradient of the weighted average negative log-likelihood by enumeration."""
    states = jnp.asarray(all_binary(rbm.num_visible))

    def nll(p):
        data_term = jnp.sum(weights * rbm.energy(p, data)) / jnp.sum(weights)
        return data_term + jax.nn.logsumexp(-rbm.energy(p, states))

    return jax.grad(nll)(params)


def flatten(tree):
    return np.concatenate([np.ravel(tree[k]) for k in sorted(tree)])


def test_stochastic_gradient_matches_exact_gradient(tiny_rbm):
    """The learner's gradient averages to the exact one within 4.5 standard errors.

    The fantasy chains start from exact samples, so after one sweep they are
    still independent exact samples and the only error is Monte Carlo noise of
    the model term. Its standard error is the per-chain standard deviation of
    the energy gradient over sqrt(num_chains). With 23 gradient components the
    family-wise failure rate of a 4.5-sigma bound is below 2e-4.
    """
    rbm, params = tiny_rbm
    num_chains = 20000
    probs = brute_force_visible_probs(params, 5, 3)
    rng = np.random.default_rng(0)
    start = all_binary(5)[rng.choice(32, size=num_chains, p=probs)]
    data = jnp.asarray(all_binary(5)[rng.choice(32, size=64)])
    weights = jnp.asarray(rng.uniform(0.5, 2.0, size=64))

    learner = MaximumLikelihood(rbm, optax.sgd(1.0), num_chains=num_chains)
    state = learner.init(jax.random.key(0), params, init_position=start)
    new_state, _ = learner.update(state, {"v": data}, weights)
    learner_grad = flatten(jax.tree.map(lambda a, b: a - b, params, new_state.params))

    exact = flatten(exact_nll_gradient(rbm, params, data, weights))
    fantasy = new_state.chains.position["v"]
    per_chain = jax.vmap(jax.grad(lambda p, v: rbm.energy(p, v[None])[0]), (None, 0))(
        params, fantasy
    )
    per_chain = np.concatenate(
        [np.asarray(per_chain[k]).reshape(num_chains, -1) for k in sorted(per_chain)],
        axis=1,
    )
    standard_error = per_chain.std(axis=0) / np.sqrt(num_chains)
    assert np.all(np.abs(learner_grad - exact) < 4.5 * standard_error + 1e-6)


def test_gradient_check_has_power(tiny_rbm):
    """With chains far from equilibrium the same bound fails."""
    rbm, params = tiny_rbm
    data = jnp.asarray(all_binary(5)[:16])
    learner = MaximumLikelihood(rbm, optax.sgd(1.0), num_chains=20000)
    state = learner.init(jax.random.key(0), params, init_position=jnp.ones((20000, 5)))
    new_state, _ = learner.update(state, {"v": data})
    learner_grad = flatten(jax.tree.map(lambda a, b: a - b, params, new_state.params))
    exact = flatten(exact_nll_gradient(rbm, params, data, jnp.ones(16)))
    assert np.max(np.abs(learner_grad - exact)) > 0.05


def test_changed_params_change_fantasy_particles():
    rbm = BernoulliRBM(8, 3)
    learner = MaximumLikelihood(rbm, optax.sgd(0.0), num_chains=50)
    state = learner.init(jax.random.key(0))
    batch = {"v": jnp.zeros((10, 8))}
    update = jax.jit(learner.update)
    on = state._replace(params=dict(state.params, visible_bias=jnp.full(8, 30.0)))
    off = state._replace(params=dict(state.params, visible_bias=jnp.full(8, -30.0)))
    np.testing.assert_array_equal(update(on, batch)[0].chains.position["v"], 1.0)
    np.testing.assert_array_equal(update(off, batch)[0].chains.position["v"], 0.0)
    assert update._cache_size() == 1


def test_no_recompilation_across_updates_and_epochs():
    rbm = BernoulliRBM(6, 2)
    data = np.random.default_rng(0).integers(0, 2, size=(45, 6))
    learner = MaximumLikelihood(rbm, optax.adam(0.01), num_chains=16)
    result = learner.run(
        jax.random.key(0), data, num_epochs=3, batch_size=10, progress_bar=False
    )
    learner.run(
        jax.random.key(1),
        data,
        num_epochs=2,
        batch_size=10,
        init_state=result.state,
        progress_bar=False,
    )
    assert learner._jit_epoch._cache_size() == 1

    update = jax.jit(learner.update)
    state = result.state
    batch = rbm.as_configuration(data[:10])
    for _ in range(3):
        state, _ = update(state, batch)
    assert update._cache_size() == 1


def test_run_returns_history_and_state():
    rbm = BernoulliRBM(6, 2)
    data = np.random.default_rng(1).integers(0, 2, size=(45, 6))
    learner = MaximumLikelihood(rbm, optax.sgd(0.05), num_chains=16, num_sweeps=2)
    result = learner.run(
        jax.random.key(0),
        data,
        num_epochs=4,
        batch_size=10,
        metrics={"mean_bias": lambda p: jnp.mean(p["visible_bias"])},
        metrics_every=2,
        progress_bar=False,
    )
    history = result.history
    # 45 examples pad to 5 minibatches of 10 per epoch.
    assert history.energy_gap.shape == (20,)
    np.testing.assert_allclose(
        history.energy_gap,
        history.data_energy - history.fantasy_energy,
        rtol=1e-5,
        atol=1e-5,
    )
    np.testing.assert_array_equal(history.metric_epochs, [2, 4])
    assert history.metrics["mean_bias"].shape == (2,)
    assert int(result.state.step) == 20
    assert result.chains.position["v"].shape == (16, 6)
    assert jax.tree.structure(result.opt_state) == jax.tree.structure(
        learner.optimizer.init(result.params)
    )


def test_padding_rows_carry_zero_weight():
    from numpyro_ebm.learning.learner import _pad_to_batches

    data = {"x": jnp.arange(7.0)[:, None]}
    padded, weights = _pad_to_batches(data, jnp.full(7, 2.0), batch_size=5)
    assert padded["x"].shape == (10, 1)
    np.testing.assert_array_equal(weights, [2.0] * 7 + [0.0] * 3)
    np.testing.assert_array_equal(padded["x"][:7, 0], np.arange(7.0))


def test_epoch_data_term_is_data_mean():
    """With a frozen model and one minibatch, the data energy is the data mean."""
    model = EnergyModel.from_energy_fn(
        lambda p, x: -p["bias"] @ x, {"bias": jnp.array([1.0, 2.0, 4.0])}, shape=3
    )
    data = np.array([[1, 0, 0]] * 3 + [[0, 1, 0]] * 2 + [[0, 0, 1]] * 2)
    learner = MaximumLikelihood(model, optax.sgd(0.0), num_chains=4)
    result = learner.run(
        jax.random.key(0), data, num_epochs=1, batch_size=7, progress_bar=False
    )
    np.testing.assert_allclose(
        result.history.data_energy, [-(3 + 4 + 8) / 7], rtol=1e-6
    )


def test_cd_restarts_chains_at_minibatch():
    rbm = BernoulliRBM(6, 2)
    data = np.random.default_rng(2).integers(0, 2, size=(40, 6))
    learner = MaximumLikelihood(rbm, optax.sgd(0.1), method="cd", num_sweeps=3)
    result = learner.run(
        jax.random.key(0), data, num_epochs=2, batch_size=8, progress_bar=False
    )
    assert result.chains.position["v"].shape == (8, 6)
    with pytest.raises(ValueError, match="`batch_size` is 10"):
        learner.run(
            jax.random.key(0),
            data,
            num_epochs=1,
            batch_size=10,
            init_state=result.state,
            progress_bar=False,
        )


def test_cd_with_infinite_sweeps_limit_is_data():
    """CD with a kernel that never moves gives a zero gradient."""
    rbm = BernoulliRBM(4, 2)
    frozen = site_gibbs(rbm, inverse_temperature=1.0)
    learner = MaximumLikelihood(rbm, optax.sgd(1.0), kernel=frozen, method="cd")
    batch = {"v": jnp.ones((4, 4))}
    state = learner._with_chains(4).init(jax.random.key(0), init_position=batch["v"])
    params = dict(state.params, visible_bias=jnp.full(4, 50.0))
    new_state, metrics = learner.update(state._replace(params=params), batch)
    # At bias 50 the chains stay at all-ones, the batch; the gradient is ~0.
    assert float(metrics.grad_norm) < 1e-3


def test_l2_penalty_adds_weight_decay():
    rbm = BernoulliRBM(4, 2, init_scale=1.0)
    batch = {"v": jnp.ones((4, 4))}
    plain = MaximumLikelihood(rbm, optax.sgd(1.0), num_chains=4)
    penalised = MaximumLikelihood(
        rbm, optax.sgd(1.0), num_chains=4, penalty=Penalty(l2={"weights": 0.5})
    )
    state = plain.init(jax.random.key(0))
    new_plain, _ = plain.update(state, batch)
    new_penalised, _ = penalised.update(state, batch)
    decay = new_plain.params["weights"] - new_penalised.params["weights"]
    np.testing.assert_allclose(
        decay, 0.5 * state.params["weights"], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        new_plain.params["hidden_bias"], new_penalised.params["hidden_bias"]
    )


def test_l1_penalty_adds_sign():
    rbm = BernoulliRBM(4, 2, init_scale=1.0)
    batch = {"v": jnp.ones((4, 4))}
    plain = MaximumLikelihood(rbm, optax.sgd(1.0), num_chains=4)
    penalised = MaximumLikelihood(
        rbm, optax.sgd(1.0), num_chains=4, penalty=Penalty(l1={"weights": 0.1})
    )
    state = plain.init(jax.random.key(0))
    decay = (
        plain.update(state, batch)[0].params["weights"]
        - penalised.update(state, batch)[0].params["weights"]
    )
    np.testing.assert_allclose(
        decay, 0.1 * np.sign(state.params["weights"]), rtol=1e-5, atol=1e-6
    )


def test_penalty_rejects_unknown_parameter():
    with pytest.raises(
        ValueError, match="'W'.*\\['hidden_bias', 'visible_bias', 'weights'\\]"
    ):
        MaximumLikelihood(
            BernoulliRBM(4, 2), optax.sgd(0.1), penalty=Penalty(l2={"W": 1.0})
        )


def test_weights_change_data_term():
    rbm = BernoulliRBM(3, 1)
    data = np.array([[1, 1, 1], [0, 0, 0]])
    learner = MaximumLikelihood(rbm, optax.sgd(0.0), num_chains=4)
    state = learner.init(jax.random.key(0))
    params = dict(state.params, visible_bias=jnp.ones(3))
    state = state._replace(params=params)
    batch = rbm.as_configuration(data)
    _, heavy_first = learner.update(state, batch, jnp.array([3.0, 1.0]))
    _, equal = learner.update(state, batch, jnp.array([1.0, 1.0]))
    energies = rbm.energy(params, batch["v"])
    np.testing.assert_allclose(
        heavy_first.data_energy, (3 * energies[0] + energies[1]) / 4, rtol=1e-5
    )
    np.testing.assert_allclose(equal.data_energy, energies.mean(), rtol=1e-5)


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (np.array([1.0, -1.0, 1.0, 1.0]), "negative value -1.0 at index 1"),
        (np.array([1.0, np.nan, 1.0, 1.0]), "finite"),
        (np.ones(3), r"shape \(4,\)"),
        (np.zeros(4), "sum to 0.0"),
    ],
)
def test_bad_weights_rejected(weights, match):
    learner = MaximumLikelihood(BernoulliRBM(3, 1), optax.sgd(0.1), num_chains=2)
    with pytest.raises(ValueError, match=match):
        learner.run(
            jax.random.key(0),
            np.zeros((4, 3)),
            num_epochs=1,
            batch_size=2,
            weights=weights,
            progress_bar=False,
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "sgd"}, "`method` must be one of"),
        ({"num_chains": 0}, "`num_chains` must be a positive integer; got 0"),
        ({"num_sweeps": 1.5}, "`num_sweeps`"),
    ],
)
def test_bad_learner_arguments_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MaximumLikelihood(BernoulliRBM(3, 1), optax.sgd(0.1), **kwargs)


def test_optimizer_type_checked():
    with pytest.raises(TypeError, match="optax.GradientTransformation"):
        MaximumLikelihood(BernoulliRBM(3, 1), 0.1)


def test_bad_run_arguments_rejected():
    learner = MaximumLikelihood(BernoulliRBM(3, 1), optax.sgd(0.1), num_chains=2)
    with pytest.raises(
        ValueError, match="`batch_size` must be a positive integer; got 0"
    ):
        learner.run(jax.random.key(0), np.zeros((4, 3)), num_epochs=1, batch_size=0)
    with pytest.raises(ValueError, match="`data`"):
        learner.run(jax.random.key(0), np.full((4, 3), 0.5), num_epochs=1, batch_size=2)
    with pytest.raises(ValueError, match="`init_position` has 3 configurations"):
        learner.init(jax.random.key(0), init_position=np.zeros((3, 3)))


def test_divergence_raises_with_last_good_state():
    rbm = BernoulliRBM(4, 2)
    data = np.random.default_rng(0).integers(0, 2, size=(20, 4))
    learner = MaximumLikelihood(rbm, optax.sgd(1e38), num_chains=8)
    with pytest.raises(TrainingDivergedError, match="diverged at update") as error:
        learner.run(
            jax.random.key(0), data, num_epochs=5, batch_size=4, progress_bar=False
        )
    good = error.value.state
    assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(good.params))


def test_resume_continues_step_count():
    rbm = BernoulliRBM(4, 2)
    data = np.random.default_rng(0).integers(0, 2, size=(20, 4))
    learner = MaximumLikelihood(rbm, optax.sgd(0.05), num_chains=8)
    first = learner.run(
        jax.random.key(0), data, num_epochs=2, batch_size=4, progress_bar=False
    )
    second = learner.run(
        jax.random.key(9),
        data,
        num_epochs=1,
        batch_size=4,
        init_state=first.state,
        progress_bar=False,
    )
    assert int(second.state.step) == 15


def test_chains_from_data_start_at_training_rows():
    rbm = BernoulliRBM(4, 2)
    data = np.tile(np.array([[1, 0, 1, 0]]), (20, 1))
    learner = MaximumLikelihood(rbm, optax.sgd(0.0), num_chains=8, num_sweeps=1)
    state = learner.init(jax.random.key(0), init_position=data[:8])
    np.testing.assert_array_equal(state.chains.position["v"], data[:8])


def test_generic_numpyro_model_trains_toward_data():
    """A fully visible model fitted with single-site Gibbs moves its fields toward the data."""
    model = EnergyModel.from_energy_fn(
        lambda p, x: -p["bias"] @ x, {"bias": jnp.zeros(3)}, shape=3
    )
    data = np.array([[1, 0, 1]] * 30 + [[1, 1, 0]] * 10)
    learner = MaximumLikelihood(model, optax.sgd(0.2), num_chains=200)
    result = learner.run(
        jax.random.key(0), data, num_epochs=30, batch_size=10, progress_bar=False
    )
    # Maximum likelihood: sigmoid(bias) equals the data means (1, 0.25, 0.75); the
    # first is unbounded, so only its sign and the other two are checked.
    probs = jax.nn.sigmoid(result.params["bias"])
    assert probs[0] > 0.9
    np.testing.assert_allclose(probs[1:], [0.25, 0.75], atol=0.08)


def test_energy_magnitude_penalty_gradient():
    model = EnergyModel.from_energy_fn(
        lambda p, x: -p["bias"] @ x, {"bias": jnp.array([1.0, 2.0])}, shape=2
    )
    batch = {"x": jnp.array([[1.0, 1.0]])}
    start = jnp.array([[0.0, 1.0]])
    plain = MaximumLikelihood(
        model, optax.sgd(1.0), num_chains=1, kernel=site_gibbs(model, 0.0)
    )
    penalised = MaximumLikelihood(
        model,
        optax.sgd(1.0),
        num_chains=1,
        kernel=site_gibbs(model, 0.0),
        penalty=Penalty(energy_magnitude=0.5),
    )
    state = plain.init(jax.random.key(0), init_position=start)
    new_plain, _ = plain.update(state, batch)
    new_penalised, _ = penalised.update(state, batch)
    fantasy = new_plain.chains.position["x"][0]
    # d/db of 0.5 (E_data^2 + E_fantasy^2) with E = -b.x is E_data (-x_data) + E_f (-x_f).
    e_data = -(1.0 + 2.0)
    e_fantasy = -float(jnp.array([1.0, 2.0]) @ fantasy)
    extra = 0.5 * 2 * (e_data * -batch["x"][0] + e_fantasy * -fantasy)
    np.testing.assert_allclose(
        new_plain.params["bias"] - new_penalised.params["bias"], extra, rtol=1e-5
    )


def test_energy_magnitude_must_be_non_negative():
    with pytest.raises(ValueError, match="energy_magnitude"):
        MaximumLikelihood(
            BernoulliRBM(3, 1), optax.sgd(0.1), penalty=Penalty(energy_magnitude=-1.0)
        )


def test_history_records_kernel_info():
    rbm = BernoulliRBM(6, 2)
    data = np.random.default_rng(0).integers(0, 2, size=(20, 6))
    learner = MaximumLikelihood(rbm, optax.sgd(0.05), num_chains=8)
    result = learner.run(
        jax.random.key(0), data, num_epochs=2, batch_size=10, progress_bar=False
    )
    activation = result.history.kernel_info["hidden_activation"]
    assert activation.shape == (4,)
    assert np.all((activation > 0) & (activation < 1))


def test_kernel_adapt_hook_runs_after_sweeps():
    """A kernel's `adapt` receives the batch of chains and the last sweep's info."""
    from numpyro_ebm.kernels import Kernel, block_gibbs

    rbm = BernoulliRBM(4, 2)
    inner = block_gibbs(rbm)

    def adapt(states, infos):
        assert infos.hidden_activation.shape == (5,)
        position = {"v": jnp.zeros_like(states.position["v"])}
        return states._replace(position=position)

    learner = MaximumLikelihood(
        rbm, optax.sgd(0.0), num_chains=5, kernel=Kernel(inner.init, inner.step, adapt)
    )
    state = learner.init(jax.random.key(0))
    new_state, _ = learner.update(state, {"v": jnp.ones((3, 4))})
    np.testing.assert_array_equal(new_state.chains.position["v"], 0.0)


def test_progress_bar_and_callbacks(monkeypatch, capsys):
    monkeypatch.delenv("CI", raising=False)
    rbm = BernoulliRBM(4, 2)
    data = np.random.default_rng(0).integers(0, 2, size=(40, 4))
    learner = MaximumLikelihood(rbm, optax.sgd(0.05), num_chains=8)
    seen = []
    learner.run(
        jax.random.key(0),
        data,
        num_epochs=3,
        batch_size=4,
        progress_bar=True,
        callbacks=[lambda epoch, state: seen.append((epoch, int(state.step)))],
    )
    assert seen == [(1, 10), (2, 20), (3, 30)]
    err = capsys.readouterr().err
    assert "30/30" in err
    assert "epoch=3/3" in err


def test_progress_bar_off_under_ci(monkeypatch, capsys):
    monkeypatch.setenv("CI", "true")
    rbm = BernoulliRBM(4, 2)
    data = np.random.default_rng(0).integers(0, 2, size=(8, 4))
    learner = MaximumLikelihood(rbm, optax.sgd(0.05), num_chains=8)
    learner.run(jax.random.key(0), data, num_epochs=1, batch_size=4, progress_bar=True)
    assert "training" not in capsys.readouterr().err


def small_run(learner, data, **kwargs):
    return learner.run(
        jax.random.key(0),
        data,
        num_epochs=1,
        batch_size=4,
        progress_bar=False,
        **kwargs,
    )


def test_resume_rejects_other_model_or_chain_count():
    data = np.random.default_rng(0).integers(0, 2, size=(8, 4))
    first = small_run(
        MaximumLikelihood(BernoulliRBM(4, 2), optax.sgd(0.1), num_chains=5), data
    )
    with pytest.raises(
        ValueError, match=r"`init_state.params\['weights'\]` has shape \(4, 2\)"
    ):
        small_run(
            MaximumLikelihood(BernoulliRBM(4, 3), optax.sgd(0.1), num_chains=5),
            data,
            init_state=first.state,
        )
    with pytest.raises(ValueError, match="contains 5 chains, but `num_chains` is 7"):
        small_run(
            MaximumLikelihood(BernoulliRBM(4, 2), optax.sgd(0.1), num_chains=7),
            data,
            init_state=first.state,
        )
    with pytest.raises(ValueError, match="different optimiser"):
        small_run(
            MaximumLikelihood(BernoulliRBM(4, 2), optax.adam(0.1), num_chains=5),
            data,
            init_state=first.state,
        )
    with pytest.raises(ValueError, match="not both"):
        small_run(
            MaximumLikelihood(BernoulliRBM(4, 2), optax.sgd(0.1), num_chains=5),
            data,
            init_state=first.state,
            init_params=first.params,
        )
    resumed = small_run(
        MaximumLikelihood(BernoulliRBM(4, 2), optax.sgd(0.1), num_chains=5),
        data,
        init_state=first,
    )
    assert int(resumed.state.step) == 4


def test_bad_init_params_rejected():
    learner = MaximumLikelihood(BernoulliRBM(4, 2), optax.sgd(0.1), num_chains=5)
    data = np.zeros((8, 4))
    with pytest.raises(
        ValueError, match=r"parameters \['hidden_bias', 'visible_bias', 'weights'\]"
    ):
        small_run(learner, data, init_params={"W": jnp.zeros((4, 2))})


def test_zero_weight_minibatches_leave_params_unchanged():
    rbm = BernoulliRBM(4, 2)
    learner = MaximumLikelihood(rbm, optax.sgd(0.5), num_chains=5)
    state = learner.init(jax.random.key(0))
    new_state, metrics = learner.update(state, {"v": jnp.ones((4, 4))}, jnp.zeros(4))
    for name in state.params:
        np.testing.assert_array_equal(new_state.params[name], state.params[name])
    assert np.isfinite(float(metrics.data_energy))
    weights = np.zeros(40)
    weights[0] = 1.0
    data = np.random.default_rng(0).integers(0, 2, size=(40, 4))
    result = learner.run(
        jax.random.key(0),
        data,
        num_epochs=2,
        batch_size=4,
        weights=weights,
        progress_bar=False,
    )
    assert np.all(np.isfinite(result.history.data_energy))


def test_error_during_run_keeps_training_state():
    learner = MaximumLikelihood(BernoulliRBM(4, 2), optax.sgd(0.1), num_chains=5)
    data = np.random.default_rng(0).integers(0, 2, size=(8, 4))
    calls = []

    def failing_metric(params):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("metric failed")
        return {"ok": 0.0}

    with pytest.raises(RuntimeError, match="metric failed") as error:
        learner.run(
            jax.random.key(0),
            data,
            num_epochs=3,
            batch_size=4,
            metrics=failing_metric,
            progress_bar=False,
        )
    assert int(error.value.training_state.step) == 4


def test_mcmc_kernel_class_accepted_as_kernel():
    from numpyro_ebm.kernels import BlockGibbs

    rbm = BernoulliRBM(4, 2)
    learner = MaximumLikelihood(
        rbm, optax.sgd(0.1), kernel=BlockGibbs(rbm), num_chains=3
    )
    assert learner.kernel is not None
    with pytest.raises(TypeError, match="`kernel` must be a Kernel"):
        MaximumLikelihood(rbm, optax.sgd(0.1), kernel="gibbs")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"penalty": {"l2": 1.0}}, TypeError, "`penalty` must be a Penalty"),
    ],
)
def test_bad_learner_types_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        MaximumLikelihood(BernoulliRBM(3, 1), optax.sgd(0.1), **kwargs)


def test_bad_metrics_rejected():
    learner = MaximumLikelihood(BernoulliRBM(4, 2), optax.sgd(0.1), num_chains=5)
    data = np.zeros((8, 4))
    with pytest.raises(TypeError, match="`metrics` must be"):
        small_run(learner, data, metrics={"a": 3})
    with pytest.raises(TypeError, match="must return a dict"):
        small_run(learner, data, metrics=lambda p: 1.0)
    with pytest.raises(ValueError, match="must be a scalar"):
        small_run(learner, data, metrics={"a": lambda p: jnp.ones(3)})


def test_batch_size_larger_than_data_rejected():
    learner = MaximumLikelihood(BernoulliRBM(4, 2), optax.sgd(0.1), num_chains=5)
    with pytest.raises(ValueError, match="`batch_size` is 10 but `data` has only 8"):
        learner.run(0, np.zeros((8, 4)), num_epochs=1, batch_size=10)
    with pytest.raises(ValueError, match="`num_epochs`"):
        learner.run(0, np.zeros((8, 4)), num_epochs=True, batch_size=4)


def test_callback_returning_true_stops_training():
    learner = MaximumLikelihood(BernoulliRBM(4, 2), optax.sgd(0.1), num_chains=5)
    data = np.random.default_rng(0).integers(0, 2, size=(8, 4))
    result = learner.run(
        jax.random.key(0),
        data,
        num_epochs=10,
        batch_size=4,
        progress_bar=False,
        callbacks=[lambda epoch, state: epoch == 3],
    )
    assert int(result.state.step) == 6
    assert result.history.energy_gap.shape == (6,)


def test_chain_batch_size_gives_same_chains():
    rbm = BernoulliRBM(6, 2)
    data = np.random.default_rng(0).integers(0, 2, size=(20, 6))
    vmapped = MaximumLikelihood(rbm, optax.sgd(0.1), num_chains=6)
    grouped = MaximumLikelihood(rbm, optax.sgd(0.1), num_chains=6, chain_batch_size=4)
    first = small_run(vmapped, data)
    second = small_run(grouped, data)
    np.testing.assert_array_equal(
        first.chains.position["v"], second.chains.position["v"]
    )
    np.testing.assert_allclose(
        first.params["weights"], second.params["weights"], rtol=1e-6
    )
    with pytest.raises(ValueError, match="`chain_batch_size`"):
        MaximumLikelihood(rbm, optax.sgd(0.1), chain_batch_size=0)


# -- full-batch training with a closed-form data term ------------------------------


def spin_glass_rows(seed=0, count=40, num_spins=4):
    from numpyro_ebm.models import SpinGlass

    rng = np.random.default_rng(seed)
    rows = jnp.asarray(rng.choice([-1.0, 1.0], size=(count, num_spins)))
    weights = jnp.asarray(rng.uniform(0.5, 2.0, size=count))
    return SpinGlass(num_spins), rows, weights


def test_full_batch_matches_run_on_all_rows():
    """A closed-form data term gives the same parameters as full-batch ``run``.

    Both start from the same key, so the chains and every update draw the same
    random numbers; only the data term is computed differently.
    """
    model, rows, weights = spin_glass_rows()

    def data_energy(params):
        return jnp.sum(weights * model.energy(params, rows)) / jnp.sum(weights)

    learner = MaximumLikelihood(model, optax.sgd(0.1), num_chains=32, num_sweeps=2)
    by_rows = learner.run(
        jax.random.key(3),
        rows,
        weights=weights,
        num_epochs=12,
        batch_size=rows.shape[0],
        progress_bar=False,
    )
    closed_form = learner.run_full_batch(
        jax.random.key(3),
        data_energy,
        num_updates=12,
        updates_per_epoch=4,
        progress_bar=False,
    )
    np.testing.assert_allclose(
        flatten(closed_form.params), flatten(by_rows.params), atol=1e-5
    )
    np.testing.assert_array_equal(
        closed_form.chains.position["s"], by_rows.chains.position["s"]
    )
    assert int(closed_form.state.step) == 12
    assert closed_form.history.energy_gap.shape == (12,)


def test_full_batch_resume_and_callbacks():
    """Callbacks run once per epoch; a resumed run continues bit for bit."""
    model, rows, _ = spin_glass_rows(seed=1)

    def data_energy(params):
        return jnp.mean(model.energy(params, rows))

    learner = MaximumLikelihood(model, optax.sgd(0.1), num_chains=16)
    seen = []
    whole = learner.run_full_batch(
        jax.random.key(0),
        data_energy,
        num_updates=10,
        updates_per_epoch=5,
        progress_bar=False,
        callbacks=[lambda epoch, state: seen.append((epoch, int(state.step)))],
    )
    assert seen == [(1, 5), (2, 10)]
    first = learner.run_full_batch(
        jax.random.key(0),
        data_energy,
        num_updates=5,
        updates_per_epoch=5,
        progress_bar=False,
    )
    second = learner.run_full_batch(
        None,
        data_energy,
        num_updates=5,
        updates_per_epoch=5,
        init_state=first.state,
        progress_bar=False,
    )
    np.testing.assert_array_equal(flatten(second.params), flatten(whole.params))


@pytest.mark.parametrize(
    "learner_kwargs, run_kwargs, error, match",
    [
        ({"method": "cd"}, {}, ValueError, "method='pcd'"),
        (
            {"penalty": Penalty(energy_magnitude=0.1)},
            {},
            ValueError,
            "energy_magnitude",
        ),
        ({}, {"data_energy": 3.0}, TypeError, "data_energy"),
        ({}, {"data_energy": lambda p: p["fields"]}, ValueError, "scalar"),
        ({}, {"num_updates": 0}, ValueError, "num_updates"),
        ({}, {"updates_per_epoch": -1}, ValueError, "updates_per_epoch"),
    ],
)
def test_full_batch_bad_arguments_rejected(learner_kwargs, run_kwargs, error, match):
    model, rows, _ = spin_glass_rows()
    learner = MaximumLikelihood(model, optax.sgd(0.1), num_chains=4, **learner_kwargs)
    arguments = {
        "data_energy": lambda p: jnp.mean(model.energy(p, rows)),
        "num_updates": 2,
        **run_kwargs,
    }
    data_energy = arguments.pop("data_energy")
    with pytest.raises(error, match=match):
        learner.run_full_batch(
            jax.random.key(0), data_energy, progress_bar=False, **arguments
        )


def test_numpy_true_stops_training():
    model, rows, _ = spin_glass_rows()
    learner = MaximumLikelihood(model, optax.sgd(0.1), num_chains=4)
    result = learner.run_full_batch(
        jax.random.key(0),
        lambda p: jnp.mean(model.energy(p, rows)),
        num_updates=6,
        progress_bar=False,
        callbacks=[lambda epoch, state: np.bool_(epoch >= 2)],
    )
    assert int(result.state.step) == 2


def test_nan_init_params_rejected():
    model, rows, _ = spin_glass_rows()
    learner = MaximumLikelihood(model, optax.sgd(0.1), num_chains=4)
    bad = jax.tree.map(lambda x: x * np.nan, model.init_params())
    with pytest.raises(ValueError, match="init_params"):
        learner.run_full_batch(
            jax.random.key(0),
            lambda p: jnp.mean(model.energy(p, rows)),
            num_updates=2,
            init_params=bad,
            progress_bar=False,
        )


def test_resume_rejects_chains_of_another_kernel():
    from numpyro_ebm.kernels.local_field import local_field_gibbs

    model, rows, _ = spin_glass_rows()
    gibbs = MaximumLikelihood(
        model, optax.sgd(0.1), num_chains=4, kernel=site_gibbs(model)
    )
    state = gibbs.run(
        jax.random.key(0), rows, num_epochs=1, batch_size=40, progress_bar=False
    ).state
    other = MaximumLikelihood(
        model, optax.sgd(0.1), num_chains=4, kernel=local_field_gibbs(model)
    )
    with pytest.raises(ValueError, match="kernel of the earlier run"):
        other.run(
            None, rows, num_epochs=1, batch_size=40, init_state=state,
            progress_bar=False,
        )  # fmt: skip
