import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.distributions import constraints

from numpyro_ebm.models import BernoulliRBM, EnergyModel
from numpyro_ebm.models.rbm import base_rate_bias, bernoulli_rbm_model

from conftest import all_binary, rbm_params


def fully_visible_bm(num_units):
    """Boltzmann machine over binary units with a positive temperature parameter."""
    couplings = numpyro.param("couplings", jnp.zeros((num_units, num_units)))
    fields = numpyro.param("fields", jnp.zeros(num_units))
    temperature = numpyro.param(
        "temperature", jnp.array(2.0), constraint=constraints.positive
    )
    x = numpyro.sample("x", dist.ImproperUniform(constraints.boolean, (), (num_units,)))
    numpyro.factor(
        "neg_energy", (x @ fields + x @ jnp.triu(couplings, 1) @ x) / temperature
    )


def fully_visible_energy(params, x):
    temperature = jnp.exp(params["temperature"])
    return (
        -(x @ params["fields"] + x @ jnp.triu(params["couplings"], 1) @ x) / temperature
    )


def test_numpyro_and_energy_fn_energies_agree():
    model = EnergyModel.from_numpyro(fully_visible_bm, 4)
    rng = np.random.default_rng(0)
    params = {
        "couplings": jnp.asarray(rng.normal(size=(4, 4)), dtype=float),
        "fields": jnp.asarray(rng.normal(size=4), dtype=float),
        "temperature": jnp.asarray(0.3),
    }
    plain = EnergyModel.from_energy_fn(fully_visible_energy, params, shape=4)
    x = jnp.asarray(all_binary(4))
    np.testing.assert_allclose(
        model.energy(params, x), plain.energy(params, x), rtol=1e-6
    )


def test_numpyro_and_energy_fn_gradients_agree():
    model = EnergyModel.from_numpyro(fully_visible_bm, 4)
    rng = np.random.default_rng(1)
    params = {
        "couplings": jnp.asarray(rng.normal(size=(4, 4)), dtype=float),
        "fields": jnp.asarray(rng.normal(size=4), dtype=float),
        "temperature": jnp.asarray(-0.2),
    }
    plain = EnergyModel.from_energy_fn(fully_visible_energy, params, shape=4)
    x = jnp.asarray(all_binary(4))
    grad_numpyro = jax.grad(lambda p: model.energy(p, x).sum())(params)
    grad_plain = jax.grad(lambda p: plain.energy(p, x).sum())(params)
    for name in params:
        np.testing.assert_allclose(
            grad_numpyro[name], grad_plain[name], rtol=1e-5, atol=1e-6
        )


def test_param_constraint_is_respected():
    model = EnergyModel.from_numpyro(fully_visible_bm, 3)
    unconstrained = model.init_params()
    # The optimiser works on log(temperature), and the model uses the temperature.
    np.testing.assert_allclose(unconstrained["temperature"], np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(
        model.constrain(unconstrained)["temperature"], 2.0, rtol=1e-6
    )
    moved = dict(unconstrained, temperature=jnp.asarray(-50.0))
    assert model.constrain(moved)["temperature"] > 0


def test_changed_params_change_potential():
    model = EnergyModel.from_numpyro(fully_visible_bm, 3)
    params = model.init_params()
    z = {"x": jnp.array([1.0, 1.0, 0.0])}
    before = model.potential_fn(params)(z)
    changed = dict(params, fields=jnp.array([1.0, 2.0, 3.0]))
    after = model.potential_fn(changed)(z)
    # E = -(1 + 2) / 2 with the changed fields at temperature 2.
    assert float(before) == 0.0
    np.testing.assert_allclose(after, -1.5, rtol=1e-6)


def test_changed_params_change_potential_under_jit():
    model = EnergyModel.from_numpyro(fully_visible_bm, 3)
    z = {"x": jnp.array([1.0, 0.0, 1.0])}
    potential = jax.jit(lambda p: model.potential_fn(p)(z))
    params = model.init_params()
    first = potential(params)
    second = potential(dict(params, fields=jnp.array([4.0, 0.0, 0.0])))
    np.testing.assert_allclose(first, 0.0)
    np.testing.assert_allclose(second, -2.0, rtol=1e-6)
    assert potential._cache_size() == 1


def test_rbm_free_energy_matches_latent_enumeration():
    rbm = BernoulliRBM(5, 3)
    params = rbm_params(5, 3, seed=2)
    v = jnp.asarray(all_binary(5))
    closed_form = rbm.energy(params, v)
    enumerated = EnergyModel.marginal_energy(rbm, params, {"v": v})
    np.testing.assert_allclose(closed_form, enumerated, rtol=1e-5, atol=1e-5)


def test_rbm_matches_generic_numpyro_model():
    rbm = BernoulliRBM(4, 3)
    generic = EnergyModel.from_numpyro(bernoulli_rbm_model, 4, 3, visible=["v"])
    params = rbm_params(4, 3, seed=3)
    v = jnp.asarray(all_binary(4))
    np.testing.assert_allclose(
        rbm.energy(params, v), generic.energy(params, v), rtol=1e-5
    )


def test_rbm_conditionals_match_enumeration():
    rbm = BernoulliRBM(4, 3)
    params = rbm_params(4, 3, seed=4, scale=2.0)
    v_all, h_all = all_binary(4), all_binary(3)
    w = np.asarray(params["weights"], dtype=np.float64)
    b = np.asarray(params["visible_bias"], dtype=np.float64)
    c = np.asarray(params["hidden_bias"], dtype=np.float64)
    for v in v_all:
        weights = np.exp(h_all @ c + v @ b + v @ w @ h_all.T)
        expected = (weights[:, None] * h_all).sum(0) / weights.sum()
        got = rbm.hidden_probs(params, jnp.asarray(v[None]))[0]
        np.testing.assert_allclose(got, expected, rtol=1e-5)
    for h in h_all:
        weights = np.exp(v_all @ b + h @ c + v_all @ w @ h)
        expected = (weights[:, None] * v_all).sum(0) / weights.sum()
        got = rbm.visible_probs(params, jnp.asarray(h[None]))[0]
        np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_bernoulli_base_measure_adds_field_term():
    def model():
        bias = numpyro.param("bias", jnp.array([0.5, -1.0]))
        numpyro.sample("x", dist.Bernoulli(logits=bias).to_event(1))

    energy_model = EnergyModel.from_numpyro(model)
    x = jnp.asarray(all_binary(2))
    energies = energy_model.energy(energy_model.init_params(), x)
    # E(x) = -b.x + sum softplus(b): differences between states are the field terms.
    np.testing.assert_allclose(
        energies - energies[0], -(x @ jnp.array([0.5, -1.0])), rtol=1e-6
    )


def test_categorical_site_domain():
    def potts_pair():
        coupling = numpyro.param("coupling", 1.0)
        x = numpyro.sample(
            "x", dist.ImproperUniform(constraints.integer_interval(0, 2), (), (2,))
        )
        numpyro.factor("neg_energy", coupling * (x[0] == x[1]))

    model = EnergyModel.from_numpyro(potts_pair)
    assert model.sites[0].domain == (0, 1, 2)
    energies = model.energy(model.init_params(), jnp.array([[1, 1], [0, 2]]))
    np.testing.assert_allclose(energies, [-1.0, 0.0])


def test_model_without_sample_site_rejected():
    def no_sites():
        numpyro.param("theta", 1.0)

    with pytest.raises(ValueError, match="no unobserved sample site"):
        EnergyModel.from_numpyro(no_sites)


def test_unbounded_discrete_site_rejected():
    def poisson_site():
        numpyro.sample("n", dist.Poisson(3.0))

    with pytest.raises(NotImplementedError, match="`n`"):
        EnergyModel.from_numpyro(poisson_site)


def test_rbm_rejects_bad_sizes():
    with pytest.raises(ValueError, match="`num_hidden`"):
        BernoulliRBM(4, 0)
    with pytest.raises(ValueError, match="`visible_bias`"):
        BernoulliRBM(4, 2, visible_bias=np.zeros(3))


def test_base_rate_bias_matches_marginals():
    data = np.array([[1, 0, 1], [1, 0, 0], [1, 1, 0], [0, 0, 0]])
    bias = base_rate_bias(data, pseudocount=0.0)
    np.testing.assert_allclose(jax.nn.sigmoid(bias), [0.75, 0.25, 0.25], rtol=1e-5)
