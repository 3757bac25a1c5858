import jax.numpy as jnp
import numpy as np
import pytest

from numpyro_ebm.models import BernoulliRBM, EnergyModel


@pytest.fixture
def rbm():
    return BernoulliRBM(4, 2)


def test_non_binary_data_rejected(rbm):
    data = np.array([[0, 1, 2, 0]])
    with pytest.raises(
        ValueError, match=r"`data`.*value 2 at index \(0, 2\).*domain \(0.0, 1.0\)"
    ):
        rbm.as_configuration(data)


def test_nan_data_rejected(rbm):
    data = np.array([[0.0, 1.0, np.nan, 0.0]])
    with pytest.raises(
        ValueError, match=r"`data`.*non-finite value nan at index \(0, 2\)"
    ):
        rbm.as_configuration(data)


def test_infinite_data_rejected(rbm):
    data = np.array([[0.0, np.inf, 1.0, 0.0]])
    with pytest.raises(ValueError, match=r"non-finite value inf"):
        rbm.as_configuration(data)


def test_wrong_feature_count_rejected(rbm):
    with pytest.raises(ValueError, match=r"shape \(batch, 4\); got \(3, 5\)"):
        rbm.as_configuration(np.zeros((3, 5)))


def test_single_example_hint(rbm):
    with pytest.raises(ValueError, match=r"x\[None\]"):
        rbm.as_configuration(np.zeros(4))


def test_empty_data_rejected(rbm):
    with pytest.raises(ValueError, match="`data` .*empty"):
        rbm.as_configuration(np.zeros((0, 4)))


def test_string_data_rejected(rbm):
    with pytest.raises(TypeError, match="numeric or boolean"):
        rbm.as_configuration(np.array([["a", "b", "c", "d"]]))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int64, bool])
def test_integer_and_boolean_data_cast(rbm, dtype):
    # 300 rows of uint8 ones would overflow a uint8 sum; the cast avoids it.
    data = np.ones((300, 4), dtype=dtype)
    config = rbm.as_configuration(data)
    assert config["v"].dtype == jnp.float32
    assert float(config["v"].sum()) == 1200.0


def test_dict_data_with_wrong_keys_rejected(rbm):
    with pytest.raises(ValueError, match=r"missing \['v'\], unexpected \['x'\]"):
        rbm.as_configuration({"x": np.zeros((2, 4))})


def test_spin_domain_checked():
    model = EnergyModel.from_energy_fn(
        lambda p, x: -p["h"] * x.sum(), {"h": 0.1}, shape=3, domain=(-1.0, 1.0)
    )
    with pytest.raises(ValueError, match=r"domain \(-1.0, 1.0\)"):
        model.as_configuration(np.zeros((2, 3)))
    assert (
        model.as_configuration(np.ones((2, 3), dtype=np.int8))["x"].dtype == jnp.float32
    )


def test_energy_fn_output_shape_checked():
    with pytest.raises(ValueError, match="one scalar energy per configuration"):
        EnergyModel.from_energy_fn(
            lambda p, x: -jnp.sum(x) * p["b"].sum(),
            {"b": jnp.ones(3)},
            shape=3,
            batched=True,
        )
    with pytest.raises(ValueError, match="failed on a configuration of shape \\(4,\\)"):
        EnergyModel.from_energy_fn(lambda p, x: p["b"] @ x, {"b": jnp.ones(3)}, shape=4)


@pytest.mark.parametrize("domain", [(1.0, 1.0), (), (0.0,), (0.0, np.nan)])
def test_bad_domain_rejected(domain):
    with pytest.raises(ValueError, match="`domain`"):
        EnergyModel.from_energy_fn(lambda p, x: x.sum(), {}, shape=2, domain=domain)


@pytest.mark.parametrize("shape", [0, -1, (2, 0), 2.5])
def test_bad_shape_rejected(shape):
    with pytest.raises(ValueError, match="`shape`"):
        EnergyModel.from_energy_fn(lambda p, x: x.sum(), {}, shape=shape)


def test_float32_domain_values_accepted():
    model = EnergyModel.from_energy_fn(
        lambda p, x: x.sum(), {}, shape=2, domain=(0.0, 0.1, 1.0)
    )
    config = model.as_configuration(np.array([[0.1, 1.0]], dtype=np.float32))
    np.testing.assert_allclose(config["x"], [[0.1, 1.0]], rtol=1e-6)


def test_reshape_hint_for_flat_data(rbm):
    with pytest.raises(ValueError, match=r"x.reshape\(-1, 4\)"):
        rbm.as_configuration(np.zeros(12))
