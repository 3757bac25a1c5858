import itertools
import time
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.distributions import constraints
from scipy.special import expit, logsumexp

from numpyro_ebm.estimators import (
    MAX_EXACT_CONFIGURATIONS,
    entropy,
    exact_gradient,
    kl_divergence,
    log_likelihood,
    log_partition,
)
from numpyro_ebm.models import BernoulliRBM, EnergyModel

# -- reference values computed with NumPy in float64 --------------------------------


def all_states(num_units, domain=(0.0, 1.0)):
    return np.array(list(itertools.product(domain, repeat=num_units)), dtype=np.float64)


def random_rbm(num_visible, num_hidden, seed=0, scale=1.0):
    rbm = BernoulliRBM(num_visible, num_hidden)
    rng = np.random.default_rng(seed)
    constrained = {
        "weights": scale * rng.normal(size=(num_visible, num_hidden)),
        "visible_bias": scale * rng.normal(size=num_visible),
        "hidden_bias": scale * rng.normal(size=num_hidden),
    }
    params = rbm.unconstrain({k: jnp.asarray(v) for k, v in constrained.items()})
    return rbm, params, constrained


def rbm_joint_log_weights(constrained):
    """Return −E(v, h) on the grid of all (v, h) and the two state lists."""
    weights = constrained["weights"]
    visible = all_states(weights.shape[0])
    hidden = all_states(weights.shape[1])
    negative_energy = (
        (visible @ constrained["visible_bias"])[:, None]
        + (hidden @ constrained["hidden_bias"])[None, :]
        + visible @ weights @ hidden.T
    )
    return negative_energy, visible, hidden


def rbm_log_z(constrained):
    negative_energy, _, _ = rbm_joint_log_weights(constrained)
    return logsumexp(negative_energy)


def rbm_visible_log_probs(constrained):
    """Return log p(v) for every visible state, in the order of all_states."""
    negative_energy, visible, _ = rbm_joint_log_weights(constrained)
    return logsumexp(negative_energy, axis=1) - logsumexp(negative_energy), visible


def rbm_log_prob_of_rows(constrained, rows):
    log_probs, visible = rbm_visible_log_probs(constrained)
    index = {tuple(state): i for i, state in enumerate(visible)}
    return np.array([log_probs[index[tuple(row)]] for row in np.asarray(rows)])


# -- log partition ------------------------------------------------------------------


@pytest.mark.parametrize("sites", [None, ["v"], ["h"], ["v", "h"]])
def test_log_partition_matches_brute_force(sites):
    rbm, params, constrained = random_rbm(5, 3)
    expected = rbm_log_z(constrained)
    actual = float(log_partition(rbm, params, sites=sites))
    assert actual == pytest.approx(expected, rel=1e-5)


def test_log_partition_spin_model():
    rng = np.random.default_rng(1)
    couplings = rng.normal(size=(4, 4))
    couplings = (couplings + couplings.T) / 2
    fields = rng.normal(size=4)

    def energy_fn(p, x):
        return -(0.5 * x @ p["couplings"] @ x + p["fields"] @ x)

    init = {"couplings": jnp.asarray(couplings), "fields": jnp.asarray(fields)}
    model = EnergyModel.from_energy_fn(energy_fn, init, shape=4, domain=(-1.0, 1.0))
    states = all_states(4, domain=(-1.0, 1.0))
    negative_energy = 0.5 * np.einsum("bi,ij,bj->b", states, couplings, states)
    expected = logsumexp(negative_energy + states @ fields)
    actual = float(log_partition(model, model.init_params(), chunk_size=5))
    assert actual == pytest.approx(expected, rel=1e-5)


def test_log_partition_categorical_model():
    rng = np.random.default_rng(2)
    table = rng.normal(size=(3, 3))
    same_value_bonus = 0.7

    def energy_fn(p, x):
        unary = p["table"][jnp.arange(3), x].sum()
        # JAX adds booleans as a logical or, so the matches are counted as floats.
        matches = (x[:-1] == x[1:]).astype(jnp.float32)
        pair = p["bonus"] * matches.sum()
        return -(unary + pair)

    init = {"table": jnp.asarray(table), "bonus": jnp.asarray(same_value_bonus)}
    model = EnergyModel.from_energy_fn(energy_fn, init, shape=3, domain=(0, 1, 2))
    negative_energies = [
        table[np.arange(3), list(state)].sum()
        + same_value_bonus * ((state[0] == state[1]) + (state[1] == state[2]))
        for state in itertools.product(range(3), repeat=3)
    ]
    expected = logsumexp(negative_energies)
    actual = float(log_partition(model, model.init_params(), chunk_size=4))
    assert actual == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("sites", [None, ["x"], ["z"], ["x", "z"]])
def test_log_partition_numpyro_latent_model(sites):
    """A model without a closed-form marginal energy, enumerated by every route."""
    coupling = np.array([[0.8, -1.2], [0.3, 0.5], [-0.4, 1.1]])
    bias = np.array([0.2, -0.6, 0.9])

    def model_fn():
        w = numpyro.param("coupling", jnp.asarray(coupling))
        b = numpyro.param("bias", jnp.asarray(bias))
        x = numpyro.sample("x", dist.ImproperUniform(constraints.boolean, (), (3,)))
        z = numpyro.sample("z", dist.ImproperUniform(constraints.boolean, (), (2,)))
        numpyro.factor("neg_energy", x @ b + x @ w @ z)

    model = EnergyModel.from_numpyro(model_fn, visible=["x"])
    x_states, z_states = all_states(3), all_states(2)
    negative_energy = (x_states @ bias)[:, None] + x_states @ coupling @ z_states.T
    expected = logsumexp(negative_energy)
    actual = float(log_partition(model, model.init_params(), sites=sites, chunk_size=3))
    assert actual == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("sites", [["v"], ["h"], ["v", "h"]])
def test_log_partition_chunk_size_independent(sites):
    rbm, params, _ = random_rbm(5, 3, seed=3)
    reference = float(log_partition(rbm, params, sites=sites, chunk_size=2**14))
    # 7 divides none of the counts 8, 32 and 256, so the last chunk is padded.
    for chunk_size in (1, 7, 8, 2**14):
        actual = float(log_partition(rbm, params, sites=sites, chunk_size=chunk_size))
        assert actual == pytest.approx(reference, rel=1e-6), chunk_size


def test_log_partition_under_jit():
    rbm, params, constrained = random_rbm(5, 3, seed=4)
    jitted = jax.jit(lambda p: log_partition(rbm, p, sites=["v"], chunk_size=7))
    assert float(jitted(params)) == pytest.approx(rbm_log_z(constrained), rel=1e-5)


def test_log_partition_extreme_fields_finite():
    rbm = BernoulliRBM(4, 3, init_scale=0.0)
    visible_bias = np.array([1000.0, -1000.0, 1000.0, -1000.0])
    hidden_bias = np.array([1000.0, -1000.0, 0.0])
    params = rbm.init_params()
    params["visible_bias"] = jnp.asarray(visible_bias)
    params["hidden_bias"] = jnp.asarray(hidden_bias)
    softplus = np.logaddexp(0.0, np.concatenate([visible_bias, hidden_bias]))
    expected = softplus.sum()
    for sites in (None, ["v"], ["h"], ["v", "h"]):
        log_z = float(log_partition(rbm, params, sites=sites, chunk_size=3))
        assert np.isfinite(log_z), sites
        assert log_z == pytest.approx(expected, rel=1e-6), sites

    # log p(v) = b·v − Σ_i softplus(b_i): 0 for the most likely state, −1000 for
    # the state that turns off one strongly driven unit.
    data = jnp.array([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    best = float(log_likelihood(rbm, params, data[:1]))
    worse = float(log_likelihood(rbm, params, data[1:]))
    assert np.isfinite(best)
    assert np.isfinite(worse)
    assert best == pytest.approx(0.0, abs=1e-2)
    assert worse == pytest.approx(-1000.0, rel=1e-5)


def test_log_partition_extreme_couplings_finite():
    rbm, params, constrained = random_rbm(4, 3, seed=5, scale=1000.0)
    expected = rbm_log_z(constrained)
    for sites in (["v"], ["h"], ["v", "h"]):
        log_z = float(log_partition(rbm, params, sites=sites))
        assert np.isfinite(log_z), sites
        assert log_z == pytest.approx(expected, rel=1e-5), sites


def test_log_partition_float64_when_enabled():
    with jax.enable_x64(True):
        rbm, params, constrained = random_rbm(5, 3, seed=6)
        params = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in params.items()}
        log_z = log_partition(rbm, params)
        assert log_z.dtype == jnp.float64
        assert float(log_z) == pytest.approx(rbm_log_z(constrained), rel=1e-12)


def test_log_partition_float64_dtype_accumulates():
    rbm, params, constrained = random_rbm(5, 3, seed=7)
    with jax.enable_x64(True):
        log_z = log_partition(rbm, params, sites=["v"], chunk_size=3, dtype="float64")
        assert log_z.dtype == jnp.float64
        assert float(log_z) == pytest.approx(rbm_log_z(constrained), rel=1e-5)


def test_log_partition_large_rbm_runs():
    """A 64-visible, 20-hidden RBM enumerates its 2**20 hidden states.

    Took about 1.5 s on 2 CPU cores (jax 0.12, float32), including compilation.
    """
    rbm, params, _ = random_rbm(64, 20, seed=8, scale=0.1)
    start = time.perf_counter()
    log_z = float(log_partition(rbm, params))
    elapsed = time.perf_counter() - start
    assert np.isfinite(log_z)
    # With zero parameters log Z = 84 log 2 ≈ 58.2, and weights and biases of
    # scale 0.1 move it by a few nats.
    assert log_z == pytest.approx(84 * np.log(2), abs=5.0)
    assert elapsed < 60.0


# -- log-likelihood and gradient ----------------------------------------------------


def test_log_likelihood_matches_brute_force():
    rbm, params, constrained = random_rbm(5, 3, seed=9)
    data = np.array([[1, 0, 1, 1, 0], [0, 0, 0, 1, 1], [1, 1, 1, 1, 1]])
    expected = rbm_log_prob_of_rows(constrained, data).mean()
    actual = float(log_likelihood(rbm, params, data, chunk_size=5))
    assert actual == pytest.approx(expected, rel=1e-5)


def test_log_likelihood_integer_weights_repeat_rows():
    rbm, params, _ = random_rbm(5, 3, seed=10)
    data = np.array([[1, 0, 1, 1, 0], [0, 0, 0, 1, 1], [1, 1, 1, 1, 1]])
    counts = np.array([3, 0, 2])
    weighted = float(log_likelihood(rbm, params, data, counts))
    repeated = float(log_likelihood(rbm, params, np.repeat(data, counts, axis=0)))
    assert weighted == pytest.approx(repeated, rel=1e-6)


def test_log_likelihood_uses_given_log_z():
    rbm, params, _ = random_rbm(5, 3, seed=11)
    data = np.ones((1, 5))
    computed = float(log_likelihood(rbm, params, data))
    shifted = float(
        log_likelihood(rbm, params, data, log_z=log_partition(rbm, params) + 1)
    )
    assert shifted == pytest.approx(computed - 1.0, rel=1e-6)


def rbm_brute_force_gradient(constrained, data, probs):
    """Return ⟨∂E⟩_data − ⟨∂E⟩_model for E = −b·v − c·h − vᵀWh."""
    negative_energy, visible, hidden = rbm_joint_log_weights(constrained)
    joint = np.exp(negative_energy - logsumexp(negative_energy))
    model_v = joint.sum(axis=1) @ visible
    model_h = joint.sum(axis=0) @ hidden
    model_vh = visible.T @ joint @ hidden

    hidden_given_data = expit(
        constrained["hidden_bias"] + data @ constrained["weights"]
    )
    data_v = probs @ data
    data_h = probs @ hidden_given_data
    data_vh = (data * probs[:, None]).T @ hidden_given_data
    return {
        "weights": -(data_vh - model_vh),
        "visible_bias": -(data_v - model_v),
        "hidden_bias": -(data_h - model_h),
    }


@pytest.mark.parametrize(
    ("sites", "chunk_size"), [(None, 2**14), (["v"], 3), (["h"], 3), (["v", "h"], 5)]
)
def test_exact_gradient_matches_brute_force(sites, chunk_size):
    rbm, params, constrained = random_rbm(4, 3, seed=12)
    data = np.array([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0], [1.0, 1.0, 0.0, 0.0]])
    weights = np.array([0.5, 2.0, 1.0])
    expected = rbm_brute_force_gradient(constrained, data, weights / weights.sum())
    actual = exact_gradient(
        rbm, params, data, weights, sites=sites, chunk_size=chunk_size
    )
    assert set(actual) == set(expected)
    for name in expected:
        np.testing.assert_allclose(
            actual[name], expected[name], atol=1e-5, err_msg=name
        )


def test_exact_gradient_matches_finite_difference():
    rbm, params, _ = random_rbm(3, 2, seed=13)
    data = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    gradient = exact_gradient(rbm, params, data, chunk_size=3)
    step = 1e-3
    for index in np.ndindex(params["weights"].shape):
        shifted_up = dict(params, weights=params["weights"].at[index].add(step))
        shifted_down = dict(params, weights=params["weights"].at[index].add(-step))
        up = float(log_likelihood(rbm, shifted_up, data))
        down = float(log_likelihood(rbm, shifted_down, data))
        finite_difference = -(up - down) / (2 * step)
        assert float(gradient["weights"][index]) == pytest.approx(
            finite_difference, abs=2e-3
        ), index


# -- entropy and KL divergence ------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 7, 2**14])
def test_entropy_matches_brute_force(chunk_size):
    rbm, params, constrained = random_rbm(4, 3, seed=14, scale=2.0)
    log_probs, _ = rbm_visible_log_probs(constrained)
    expected = -np.sum(np.exp(log_probs) * log_probs)
    actual = float(entropy(rbm, params, chunk_size=chunk_size))
    assert actual == pytest.approx(expected, rel=1e-5)


def test_entropy_of_uniform_model():
    rbm = BernoulliRBM(6, 3, init_scale=0.0)
    actual = float(entropy(rbm, rbm.init_params()))
    assert actual == pytest.approx(6 * np.log(2), rel=1e-6)


def test_entropy_of_near_deterministic_model():
    """Fields of ±1000 put all mass on one state, so the entropy is 0."""
    rbm = BernoulliRBM(4, 2, init_scale=0.0)
    params = dict(rbm.init_params(), visible_bias=jnp.array([1e3, -1e3, 1e3, -1e3]))
    actual = float(entropy(rbm, params, chunk_size=5))
    assert np.isfinite(actual)
    assert actual == pytest.approx(0.0, abs=1e-5)


def test_kl_divergence_matches_brute_force():
    rbm, params, constrained = random_rbm(5, 3, seed=15)
    data = np.array(
        [[1, 0, 1, 1, 0], [0, 0, 0, 1, 1], [1, 0, 1, 1, 0], [1, 1, 1, 1, 1]],
        dtype=np.float64,
    )
    counts = Counter(map(tuple, data))
    p_data = {row: count / len(data) for row, count in counts.items()}
    log_p_model = rbm_log_prob_of_rows(constrained, list(p_data))
    expected = sum(
        p * (np.log(p) - log_q)
        for p, log_q in zip(p_data.values(), log_p_model, strict=True)
    )
    actual = float(kl_divergence(rbm, params, data))
    assert actual >= 0.0
    assert actual == pytest.approx(expected, rel=1e-5)


def test_kl_divergence_entropy_identity():
    rbm, params, _ = random_rbm(5, 3, seed=16)
    data = np.array([[1, 0, 1, 1, 0], [0, 0, 0, 1, 1], [1, 0, 1, 1, 0]])
    weights = np.array([1.0, 3.0, 2.0])
    # Rows 0 and 2 coincide: p_data = (1/2, 1/2) on two distinct rows.
    data_entropy = np.log(2.0)
    log_lik = float(log_likelihood(rbm, params, data, weights))
    actual = float(kl_divergence(rbm, params, data, weights))
    assert actual == pytest.approx(-data_entropy - log_lik, rel=1e-5)


def test_kl_divergence_zero_when_equal():
    """Weighting every state by p_θ makes the empirical distribution equal p_θ."""
    rbm, params, constrained = random_rbm(4, 3, seed=17)
    log_probs, visible = rbm_visible_log_probs(constrained)
    actual = float(kl_divergence(rbm, params, visible, np.exp(log_probs)))
    assert actual == pytest.approx(0.0, abs=1e-5)


def test_kl_divergence_large_rbm():
    rbm, params, _ = random_rbm(64, 12, seed=18, scale=0.1)
    data = np.random.default_rng(0).integers(0, 2, size=(10, 64))
    actual = float(kl_divergence(rbm, params, data))
    assert np.isfinite(actual)
    assert actual > 0.0


# -- invalid arguments --------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.array([1.0, -1.0, 1.0]), "negative value -1.0"),
        (np.array([1.0, np.nan, 1.0]), "non-finite value nan"),
        (np.array([1.0, np.inf, 1.0]), "non-finite value inf"),
        (np.array([1.0, 1.0]), r"shape \(3,\)"),
        (np.ones((3, 1)), r"shape \(3,\)"),
        (np.zeros(3), "at least one weight must be positive"),
        (np.array(["a", "b", "c"]), "numeric"),
    ],
)
@pytest.mark.parametrize("function", [log_likelihood, exact_gradient, kl_divergence])
def test_invalid_weights_raise(function, weights, message):
    rbm = BernoulliRBM(3, 2)
    data = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 1]])
    with pytest.raises(ValueError, match="`weights`") as error:
        function(rbm, rbm.init_params(), data, weights)
    assert error.match(message)


def test_invalid_data_raises():
    rbm = BernoulliRBM(3, 2)
    with pytest.raises(ValueError, match="`data`.*domain"):
        log_likelihood(rbm, rbm.init_params(), np.array([[1, 0, 2]]))


def test_too_many_states_raise():
    rbm = BernoulliRBM(30, 30)
    with pytest.raises(ValueError, match="MAX_EXACT_CONFIGURATIONS") as error:
        log_partition(rbm, rbm.init_params())
    assert error.match(str(2**30))
    assert error.match(str(MAX_EXACT_CONFIGURATIONS))


def test_entropy_too_many_states_raise():
    rbm = BernoulliRBM(64, 4)
    with pytest.raises(ValueError, match=str(2**64)):
        entropy(rbm, rbm.init_params())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunk_size": 0}, "`chunk_size`"),
        ({"chunk_size": 2.5}, "`chunk_size`"),
        ({"sites": ["w"]}, "`sites`"),
        ({"sites": []}, "`sites`"),
        ({"dtype": "int32"}, "`dtype`"),
    ],
)
def test_invalid_options_raise(kwargs, message):
    rbm = BernoulliRBM(3, 2)
    with pytest.raises(ValueError, match=message):
        log_partition(rbm, rbm.init_params(), **kwargs)


def test_real_valued_site_raises():
    model = EnergyModel.from_energy_fn(
        lambda p, x: p["scale"] * x @ x, {"scale": 1.0}, shape=2, domain=None
    )
    with pytest.raises(ValueError, match="real-valued"):
        log_partition(model, model.init_params())
