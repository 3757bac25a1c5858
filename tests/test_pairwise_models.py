"""The spin glass and Potts models against direct NumPy evaluation of their energies."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import log_density

from numpyro_ebm.models import EnergyModel
from numpyro_ebm.models.pairwise import (
    Potts,
    SpinGlass,
    potts_model,
    spin,
    spin_glass_model,
)
from numpyro_ebm.models.sites import SPIN


def all_spins(n):
    return np.array(list(itertools.product([-1.0, 1.0], repeat=n)))


def all_states(n, q):
    return np.array(list(itertools.product(range(q), repeat=n)), dtype=np.int32)


def raw_spin_params(n, seed=0):
    """Unsymmetric couplings with a non-zero diagonal, which the model must ignore."""
    rng = np.random.default_rng(seed)
    return {
        "couplings": jnp.asarray(rng.normal(size=(n, n)), dtype=float),
        "fields": jnp.asarray(rng.normal(size=n), dtype=float),
    }


def raw_potts_params(n, q, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "couplings": jnp.asarray(rng.normal(size=(n, q, n, q)), dtype=float),
        "fields": jnp.asarray(rng.normal(size=(n, q)), dtype=float),
    }


def numpy_spin_energy(params, s):
    w = np.asarray(params["couplings"], dtype=np.float64)
    couplings = 0.5 * (w + w.T)
    np.fill_diagonal(couplings, 0.0)
    h = np.asarray(params["fields"], dtype=np.float64)
    return -0.5 * np.einsum("bi,ij,bj->b", s, couplings, s) - s @ h


def numpy_potts_energy(params, x):
    w = np.asarray(params["couplings"], dtype=np.float64)
    h = np.asarray(params["fields"], dtype=np.float64)
    n = h.shape[0]
    energies = []
    for row in x:
        energy = -h[np.arange(n), row].sum()
        for i, j in itertools.combinations(range(n), 2):
            energy -= 0.5 * (w[i, row[i], j, row[j]] + w[j, row[j], i, row[i]])
        energies.append(energy)
    return np.array(energies)


# -- spin glass ---------------------------------------------------------------------


def test_spin_glass_energy_matches_numpy():
    model = SpinGlass(5)
    params = raw_spin_params(5)
    s = all_spins(5)
    np.testing.assert_allclose(
        model.energy(params, jnp.asarray(s)),
        numpy_spin_energy(params, s),
        rtol=1e-5,
        atol=1e-5,
    )


def test_spin_glass_numpyro_model_matches_class():
    model = SpinGlass(4)
    params = raw_spin_params(4, seed=1)
    for s in all_spins(4):
        log_joint, _ = log_density(
            spin_glass_model, (4,), {}, {**params, "s": jnp.asarray(s)}
        )
        energy = model.energy(params, jnp.asarray(s)[None])[0]
        np.testing.assert_allclose(-log_joint, energy, rtol=1e-5, atol=1e-5)


def test_spin_glass_site_and_params():
    model = SpinGlass(3)
    assert model.sites[0].name == "s"
    assert model.sites[0].domain == SPIN
    assert model.param_names == ("couplings", "fields")
    np.testing.assert_array_equal(model.init_params()["couplings"], np.zeros((3, 3)))


def test_spin_glass_couplings_symmetric():
    model = SpinGlass(6)
    couplings = np.asarray(model.coupling_matrix(raw_spin_params(6, seed=2)))
    np.testing.assert_array_equal(couplings, couplings.T)
    np.testing.assert_array_equal(np.diag(couplings), 0.0)


def test_spin_glass_local_fields():
    model = SpinGlass(5)
    params = raw_spin_params(5, seed=3)
    s = all_spins(5)
    w = np.asarray(params["couplings"], dtype=np.float64)
    couplings = 0.5 * (w + w.T)
    np.fill_diagonal(couplings, 0.0)
    expected = s @ couplings + np.asarray(params["fields"])
    np.testing.assert_allclose(
        model.local_fields(params, jnp.asarray(s)), expected, rtol=1e-5, atol=1e-5
    )


def test_spin_glass_flip_energy_change():
    model = SpinGlass(5)
    params = raw_spin_params(5, seed=4)
    s = all_spins(5)
    change = np.asarray(model.flip_energy_change(params, jnp.asarray(s)))
    for i in range(5):
        flipped = s.copy()
        flipped[:, i] *= -1
        expected = numpy_spin_energy(params, flipped) - numpy_spin_energy(params, s)
        np.testing.assert_allclose(change[:, i], expected, rtol=1e-5, atol=1e-4)


def test_spin_glass_rejects_binary_data():
    model = SpinGlass(3)
    with pytest.raises(ValueError, match="outside the site's domain"):
        model.as_configuration(np.array([[0.0, 1.0, 1.0]]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_spins": 0}, "`num_spins` must be an integer >= 1"),
        ({"num_spins": 2.0}, "`num_spins` must be an integer >= 1"),
        ({"num_spins": 3, "couplings": np.zeros((3, 2))}, r"`couplings` must have"),
        ({"num_spins": 3, "fields": np.zeros(4)}, r"`fields` must have shape \(3,\)"),
        ({"num_spins": 2, "fields": [np.nan, 0.0]}, "`fields` contains non-finite"),
    ],
)
def test_spin_glass_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpinGlass(**kwargs)


def test_spin_constraint():
    values = jnp.array([-1.0, 1.0, 0.0, 2.0])
    np.testing.assert_array_equal(spin(values), [True, True, False, False])
    assert spin.is_discrete


# -- Potts ----------------------------------------------------------------------------


def test_potts_energy_matches_numpy():
    model = Potts(4, 3)
    params = raw_potts_params(4, 3)
    x = all_states(4, 3)
    np.testing.assert_allclose(
        model.energy(params, jnp.asarray(x)),
        numpy_potts_energy(params, x),
        rtol=1e-5,
        atol=1e-4,
    )


def test_potts_numpyro_model_matches_class():
    model = Potts(3, 4)
    generic = EnergyModel.from_numpyro(potts_model, 3, 4)
    params = raw_potts_params(3, 4, seed=1)
    x = jnp.asarray(all_states(3, 4))
    assert generic.sites == model.sites
    np.testing.assert_allclose(
        generic.energy(params, x), model.energy(params, x), rtol=1e-5, atol=1e-5
    )


def test_potts_couplings_symmetric():
    model = Potts(4, 3)
    couplings = np.asarray(model.coupling_matrix(raw_potts_params(4, 3, seed=2)))
    np.testing.assert_array_equal(couplings, couplings.transpose(2, 3, 0, 1))
    for i in range(4):
        np.testing.assert_array_equal(couplings[i, :, i, :], 0.0)


def test_potts_local_fields_give_energy_differences():
    """E(x with x_i = a) − E(x) = −(F_i(x)_a − F_i(x)_{x_i}) for every i and a."""
    model = Potts(4, 3)
    params = raw_potts_params(4, 3, seed=3)
    x = all_states(4, 3)
    fields = np.asarray(model.local_fields(params, jnp.asarray(x)), dtype=np.float64)
    base = numpy_potts_energy(params, x)
    rows = np.arange(x.shape[0])
    for i in range(4):
        for a in range(3):
            changed = x.copy()
            changed[:, i] = a
            expected = numpy_potts_energy(params, changed) - base
            got = -(fields[:, i, a] - fields[rows, i, x[:, i]])
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_potts_onehot_energy_matches_energy():
    model = Potts(4, 3)
    params = raw_potts_params(4, 3, seed=4)
    x = jnp.asarray(all_states(4, 3))
    onehot = {"x": jax.nn.one_hot(x, 3)}
    np.testing.assert_allclose(
        model.onehot_energy(params, onehot), model.energy(params, x), rtol=1e-6
    )


def test_potts_site_is_categorical():
    model = Potts(5, 21)
    site = model.sites[0]
    assert (site.name, site.shape, site.domain) == ("x", (5,), tuple(range(21)))
    data = model.as_configuration(np.array([[0, 20, 3, 4, 5]]))
    assert data["x"].dtype == jnp.int32


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((0, 3), {}, "`num_sites` must be an integer >= 1"),
        ((3, 1), {}, "`num_states` must be an integer >= 2"),
        ((2, 3), {"fields": np.zeros((3, 2))}, r"`fields` must have shape \(2, 3\)"),
        ((2, 3), {"couplings": np.zeros((2, 3))}, r"`couplings` must have shape"),
    ],
)
def test_potts_rejects_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Potts(*args, **kwargs)
