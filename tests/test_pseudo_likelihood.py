import itertools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.distributions import constraints
from scipy.special import logsumexp

from numpyro_ebm.estimators.exact import log_likelihood
from numpyro_ebm.estimators.pseudo_likelihood import (
    _has_rbm_free_energy,
    pseudo_log_likelihood,
)
from numpyro_ebm.models import BernoulliRBM, EnergyModel
from numpyro_ebm.models.rbm import bernoulli_rbm_model

from conftest import all_binary, brute_force_visible_probs, rbm_params

# -- reference conditionals by enumeration in float64 -------------------------------


def brute_force_conditionals(states, log_probs, domains, rows):
    """Return log p(x_k | x_−k) = log p(x) − log Σ_a p(x_{k←a}) for each row and k.

    ``states`` and ``log_probs`` list every configuration and its log probability.
    """
    lookup = {tuple(map(float, state)): lp for state, lp in zip(states, log_probs)}
    rows = np.asarray(rows, dtype=np.float64)
    result = np.empty(rows.shape)
    for r, row in enumerate(rows):
        for k, domain in enumerate(domains):
            neighbours = []
            for value in domain:
                changed = row.copy()
                changed[k] = value
                neighbours.append(lookup[tuple(changed)])
            result[r, k] = lookup[tuple(row)] - logsumexp(neighbours)
    return result


def normalised(log_weights):
    log_weights = np.asarray(log_weights, dtype=np.float64)
    return log_weights - logsumexp(log_weights)


def rbm_case():
    params = rbm_params(4, 3, seed=2, scale=1.5)
    states = all_binary(4)
    log_probs = np.log(brute_force_visible_probs(params, 4, 3))
    rows = np.array([[1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 0, 1], [0, 1, 1, 0]])
    return params, states, log_probs, rows


def spin_case():
    rng = np.random.default_rng(3)
    couplings = rng.normal(size=(4, 4))
    couplings = (couplings + couplings.T) / 2
    fields = rng.normal(size=4)

    def energy_fn(p, x):
        return -(0.5 * x @ p["couplings"] @ x + p["fields"] @ x)

    init = {"couplings": jnp.asarray(couplings), "fields": jnp.asarray(fields)}
    model = EnergyModel.from_energy_fn(energy_fn, init, shape=4, domain=(-1.0, 1.0))
    states = np.array(list(itertools.product([-1.0, 1.0], repeat=4)))
    log_weights = 0.5 * np.einsum("bi,ij,bj->b", states, couplings, states)
    log_probs = normalised(log_weights + states @ fields)
    rows = np.array([[1, -1, 1, 1], [-1, -1, -1, -1], [1, 1, -1, 1]])
    return model, states, log_probs, rows


def potts_case():
    """Three 3-state sites with random fields and pairwise couplings."""
    rng = np.random.default_rng(4)
    fields = rng.normal(size=(3, 3))
    couplings = np.triu(np.ones((3, 3)), 1)[:, :, None, None] * rng.normal(
        size=(3, 3, 3, 3)
    )
    index = np.arange(3)

    def energy_fn(p, x):
        unary = p["fields"][index, x].sum()
        pair = p["couplings"][index[:, None], index[None, :], x[:, None], x[None, :]]
        return -(unary + pair.sum())

    init = {"fields": jnp.asarray(fields), "couplings": jnp.asarray(couplings)}
    model = EnergyModel.from_energy_fn(energy_fn, init, shape=3, domain=(0, 1, 2))
    states = np.array(list(itertools.product(range(3), repeat=3)))
    log_weights = [
        fields[index, s].sum() + couplings[index[:, None], index, s[:, None], s].sum()
        for s in states
    ]
    rows = np.array([[0, 1, 2], [2, 2, 2], [1, 0, 0], [0, 1, 2]])
    return model, states, normalised(log_weights), rows


# -- agreement with enumeration -----------------------------------------------------


def test_rbm_fast_path_matches_enumeration():
    params, states, log_probs, rows = rbm_case()
    rbm = BernoulliRBM(4, 3)
    expected = brute_force_conditionals(states, log_probs, [(0.0, 1.0)] * 4, rows)
    actual = pseudo_log_likelihood(rbm, params, rows, per_site=True)
    assert _has_rbm_free_energy(rbm)
    np.testing.assert_allclose(actual, expected, atol=1e-5)


def test_rbm_generic_path_matches_enumeration():
    params, states, log_probs, rows = rbm_case()
    model = EnergyModel.from_numpyro(bernoulli_rbm_model, 4, 3, visible=["v"])
    expected = brute_force_conditionals(states, log_probs, [(0.0, 1.0)] * 4, rows)
    actual = pseudo_log_likelihood(model, params, rows, per_site=True)
    assert not _has_rbm_free_energy(model)
    np.testing.assert_allclose(actual, expected, atol=1e-5)


def test_spin_model_matches_enumeration():
    model, states, log_probs, rows = spin_case()
    expected = brute_force_conditionals(states, log_probs, [(-1.0, 1.0)] * 4, rows)
    actual = pseudo_log_likelihood(model, model.init_params(), rows, per_site=True)
    np.testing.assert_allclose(actual, expected, atol=1e-5)


def test_potts_model_matches_enumeration():
    model, states, log_probs, rows = potts_case()
    expected = brute_force_conditionals(states, log_probs, [(0, 1, 2)] * 3, rows)
    actual = pseudo_log_likelihood(model, model.init_params(), rows, per_site=True)
    np.testing.assert_allclose(actual, expected, atol=1e-5)
    total = pseudo_log_likelihood(model, model.init_params(), rows)
    assert float(total) == pytest.approx(expected.sum(axis=1).mean(), rel=1e-5)


def test_two_site_model_matches_enumeration():
    """A binary site and a 3-state site: elements follow the site order."""
    coupling = np.array([[0.9, -1.3, 0.4], [-0.2, 0.8, 1.1]])
    bias = np.array([0.3, -0.7])

    def model_fn():
        w = numpyro.param("coupling", jnp.asarray(coupling))
        b = numpyro.param("bias", jnp.asarray(bias))
        x = numpyro.sample("x", dist.ImproperUniform(constraints.boolean, (), (2,)))
        z = numpyro.sample(
            "z", dist.ImproperUniform(constraints.integer_interval(0, 2), (), (2,))
        )
        # from_numpyro first traces the model with float zeros for every site.
        z = z.astype(jnp.int32)
        numpyro.factor("neg_energy", x @ b + x @ w[:, z].sum(axis=1))

    model = EnergyModel.from_numpyro(model_fn)
    states = np.array(
        [
            list(x) + list(z)
            for x in itertools.product([0.0, 1.0], repeat=2)
            for z in itertools.product([0, 1, 2], repeat=2)
        ],
        dtype=np.float64,
    )
    x_part, z_part = states[:, :2], states[:, 2:].astype(int)
    log_weights = x_part @ bias + np.einsum(
        "si,sij->s", x_part, coupling[:, z_part].transpose(1, 0, 2)
    )
    domains = [(0.0, 1.0)] * 2 + [(0, 1, 2)] * 2
    rows = np.array([[1, 0, 2, 1], [0, 0, 0, 0], [1, 1, 1, 2]])
    expected = brute_force_conditionals(states, normalised(log_weights), domains, rows)
    data = {"x": rows[:, :2], "z": rows[:, 2:]}
    actual = pseudo_log_likelihood(model, model.init_params(), data, per_site=True)
    np.testing.assert_allclose(actual, expected, atol=1e-5)


# -- properties ---------------------------------------------------------------------


def test_repeated_calls_identical():
    params, _, _, rows = rbm_case()
    rbm = BernoulliRBM(4, 3)
    first = np.asarray(pseudo_log_likelihood(rbm, params, rows))
    second = np.asarray(pseudo_log_likelihood(rbm, params, rows))
    assert first == second


@pytest.mark.parametrize("chunk_size", [1, 3, 64])
def test_chunk_size_independent(chunk_size):
    model, _, _, rows = potts_case()
    data = np.concatenate([rows, rows[::-1], rows[:1]])
    reference = pseudo_log_likelihood(model, model.init_params(), data, per_site=True)
    actual = pseudo_log_likelihood(
        model, model.init_params(), data, per_site=True, chunk_size=chunk_size
    )
    np.testing.assert_allclose(actual, reference, rtol=1e-6)


def test_independent_units_equal_log_likelihood():
    """Without couplings p(x_k | x_−k) = p(x_k), so PL equals the likelihood."""
    rbm = BernoulliRBM(5, 2, init_scale=0.0)
    params = dict(rbm.init_params(), visible_bias=jnp.array([1.2, -0.4, 0.0, 2.0, -3]))
    data = np.array([[1, 0, 1, 1, 0], [0, 0, 0, 1, 1], [1, 1, 1, 1, 1]])
    weights = np.array([1.0, 0.5, 2.0])
    expected = float(jax.jit(lambda p: log_likelihood(rbm, p, data, weights))(params))
    actual = float(pseudo_log_likelihood(rbm, params, data, weights))
    assert actual == pytest.approx(expected, rel=1e-5)


def test_independent_potts_gradient():
    """For independent sites both gradients are f_data(i, a) − softmax(h_i)(a)."""
    fields = np.random.default_rng(5).normal(size=(3, 4))

    def energy_fn(p, x):
        return -p["fields"][jnp.arange(3), x].sum()

    model = EnergyModel.from_energy_fn(
        energy_fn, {"fields": jnp.asarray(fields)}, shape=3, domain=(0, 1, 2, 3)
    )
    data = np.array([[0, 3, 2], [1, 1, 1], [3, 0, 2]])
    frequencies = np.eye(4)[data].mean(axis=0)
    model_probs = np.exp(fields - logsumexp(fields, axis=1, keepdims=True))
    actual = jax.grad(lambda p: pseudo_log_likelihood(model, p, data))(
        model.init_params()
    )
    np.testing.assert_allclose(actual["fields"], frequencies - model_probs, atol=1e-5)


def test_weights_equal_repeated_rows():
    model, _, _, rows = spin_case()
    counts = np.array([3, 0, 2])
    weighted = float(pseudo_log_likelihood(model, model.init_params(), rows, counts))
    repeated = float(
        pseudo_log_likelihood(
            model, model.init_params(), np.repeat(rows, counts, axis=0)
        )
    )
    assert weighted == pytest.approx(repeated, rel=1e-6)


def test_per_site_sums_to_total():
    params, _, _, rows = rbm_case()
    rbm = BernoulliRBM(4, 3)
    per_site = pseudo_log_likelihood(rbm, params, rows, per_site=True)
    total = float(pseudo_log_likelihood(rbm, params, rows))
    assert per_site.shape == (4, 4)
    assert bool(jnp.all(per_site <= 0.0))
    assert float(per_site.sum(axis=1).mean()) == pytest.approx(total, rel=1e-6)


# -- invalid arguments --------------------------------------------------------------


def test_non_binary_data_rejected():
    rbm = BernoulliRBM(3, 2)
    with pytest.raises(ValueError, match=r"`data` \(site `v`\) contains the value 2"):
        pseudo_log_likelihood(rbm, rbm.init_params(), np.array([[0, 2, 1]]))


def test_wrong_shape_data_rejected():
    rbm = BernoulliRBM(3, 2)
    with pytest.raises(ValueError, match=r"`data` \(site `v`\) must have shape"):
        pseudo_log_likelihood(rbm, rbm.init_params(), np.ones((2, 4)))


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.array([1.0, -1.0]), "`weights` contains the negative value -1.0"),
        (np.ones(3), r"`weights` must have shape \(2,\)"),
        (np.zeros(2), "`weights` sum to 0.0"),
    ],
)
def test_invalid_weights_rejected(weights, message):
    rbm = BernoulliRBM(3, 2)
    with pytest.raises(ValueError, match=message):
        pseudo_log_likelihood(rbm, rbm.init_params(), np.ones((2, 3)), weights)


def test_weights_with_per_site_rejected():
    rbm = BernoulliRBM(3, 2)
    with pytest.raises(ValueError, match="`weights` must be None"):
        pseudo_log_likelihood(
            rbm, rbm.init_params(), np.ones((2, 3)), np.ones(2), per_site=True
        )


@pytest.mark.parametrize("chunk_size", [0, 2.5, True])
def test_invalid_chunk_size_rejected(chunk_size):
    rbm = BernoulliRBM(3, 2)
    with pytest.raises(ValueError, match="`chunk_size` must be a positive integer"):
        pseudo_log_likelihood(
            rbm, rbm.init_params(), np.ones((2, 3)), chunk_size=chunk_size
        )


def test_real_valued_site_rejected():
    model = EnergyModel.from_energy_fn(
        lambda p, x: jnp.sum(x**2), {}, shape=2, domain=None
    )
    with pytest.raises(ValueError, match=r"sites \['x'\] of `model` are real-valued"):
        pseudo_log_likelihood(model, {}, np.zeros((1, 2)))
