import jax
import jax.numpy as jnp
import numpy as np
import pytest

from numpyro_ebm.estimators.moments import (
    MomentComparison,
    Moments,
    compare_moments,
    moments,
)
from numpyro_ebm.models import BernoulliRBM, EnergyModel, Site

from conftest import all_binary, brute_force_visible_probs, rbm_params

# -- reference statistics computed with NumPy in float64 ----------------------------


def numpy_moments(features, weights):
    """Return f, f^(2) and C of the rows of ``features`` with weights ``weights``."""
    probs = weights / weights.sum()
    mean = probs @ features
    second = (features * probs[:, None]).T @ features
    covariance = np.cov(features.T, aweights=probs, bias=True)
    return mean, second, covariance


def one_hot(values, num_states):
    """Return the (batch, n·q) one-hot codes of integer ``values``, state fastest."""
    return np.eye(num_states)[values].reshape(values.shape[0], -1)


def assert_moments_close(actual, expected, atol):
    mean, second, covariance = expected
    np.testing.assert_allclose(actual.mean, mean, atol=atol, err_msg="mean")
    np.testing.assert_allclose(
        actual.second_moment, second, atol=atol, err_msg="second_moment"
    )
    np.testing.assert_allclose(
        actual.covariance, covariance, atol=atol, err_msg="covariance"
    )


# -- statistics ---------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 7, 1024])
def test_binary_matches_numpy(chunk_size):
    rng = np.random.default_rng(0)
    data = (rng.random((50, 6)) < np.linspace(0.1, 0.9, 6)).astype(np.float64)
    weights = rng.random(50)
    site = Site("v", (6,), (0.0, 1.0))
    actual = moments(site, data, weights, chunk_size=chunk_size)
    assert_moments_close(actual, numpy_moments(data, weights), atol=1e-6)
    np.testing.assert_array_equal(actual.element, np.arange(6))
    np.testing.assert_array_equal(actual.state, np.full(6, -1))


def test_spin_model_matches_numpy():
    rng = np.random.default_rng(1)
    data = rng.choice([-1.0, 1.0], size=(40, 5))
    weights = rng.integers(1, 4, size=40)
    model = EnergyModel.from_energy_fn(
        lambda p, x: -p["h"] @ x, {"h": jnp.zeros(5)}, shape=5, domain=(-1.0, 1.0)
    )
    actual = moments(model, data, weights, chunk_size=16)
    assert_moments_close(actual, numpy_moments(data, weights), atol=1e-6)


def test_real_values_used_as_is():
    rng = np.random.default_rng(2)
    data = rng.normal(size=(30, 3))
    actual = moments(Site("y", (3,), None), data, chunk_size=8)
    assert_moments_close(actual, numpy_moments(data, np.ones(30)), atol=1e-5)


def test_categorical_matches_numpy():
    rng = np.random.default_rng(3)
    num_elements, num_states = 4, 3
    data = rng.integers(0, num_states, size=(60, num_elements))
    weights = rng.random(60)
    site = Site("s", (num_elements,), tuple(range(num_states)))
    actual = moments(site, data, weights, chunk_size=9)

    probs = weights / weights.sum()
    codes = np.eye(num_states)[data]  # (batch, n, q)
    frequencies = np.einsum("s,sia->ia", probs, codes)
    pair_frequencies = np.einsum("s,sia,sjb->iajb", probs, codes, codes)
    connected = pair_frequencies - np.einsum("ia,jb->iajb", frequencies, frequencies)
    shape = (num_elements, num_states, num_elements, num_states)
    np.testing.assert_allclose(
        actual.mean.reshape(num_elements, num_states), frequencies, atol=1e-6
    )
    np.testing.assert_allclose(
        actual.second_moment.reshape(shape), pair_frequencies, atol=1e-6
    )
    np.testing.assert_allclose(actual.covariance.reshape(shape), connected, atol=1e-6)
    assert_moments_close(
        actual, numpy_moments(one_hot(data, num_states), weights), atol=1e-6
    )


def test_two_sites_layout():
    binary = Site("x", (2,), (0.0, 1.0))
    potts = Site("z", (2,), (0, 1, 2))
    data = {"x": np.array([[1, 0], [1, 1]]), "z": np.array([[2, 0], [1, 0]])}
    actual = moments([binary, potts], data)
    np.testing.assert_array_equal(actual.element, [0, 1, 2, 2, 2, 3, 3, 3])
    np.testing.assert_array_equal(actual.state, [-1, -1, 0, 1, 2, 0, 1, 2])
    expected_mean = [1.0, 0.5, 0.0, 0.5, 0.5, 1.0, 0.0, 0.0]
    np.testing.assert_allclose(actual.mean, expected_mean, atol=1e-7)
    features = np.concatenate([data["x"], one_hot(data["z"], 3)], axis=1)
    assert_moments_close(actual, numpy_moments(features, np.ones(2)), atol=1e-6)


def test_weights_equal_repeated_rows():
    rng = np.random.default_rng(4)
    data = rng.integers(0, 5, size=(8, 3))
    counts = np.array([3, 0, 1, 2, 5, 1, 0, 2])
    site = Site("s", (3,), tuple(range(5)))
    weighted = moments(site, data, counts)
    repeated = moments(site, np.repeat(data, counts, axis=0))
    for field in ("mean", "second_moment", "covariance"):
        np.testing.assert_allclose(
            getattr(weighted, field), getattr(repeated, field), atol=1e-6
        )


def test_uint8_rows_do_not_overflow():
    binary = moments(Site("v", (3,), (0.0, 1.0)), np.ones((300, 3), dtype=np.uint8))
    np.testing.assert_allclose(binary.mean, np.ones(3), rtol=1e-6)
    np.testing.assert_allclose(binary.second_moment, np.ones((3, 3)), rtol=1e-6)
    np.testing.assert_allclose(binary.covariance, np.zeros((3, 3)), atol=1e-6)
    potts = moments(Site("s", (2,), (0, 1, 2)), np.full((300, 2), 2, dtype=np.uint8))
    np.testing.assert_allclose(potts.mean, [0, 0, 1, 0, 0, 1], atol=1e-6)


def test_float64_when_enabled():
    rng = np.random.default_rng(5)
    data = rng.integers(0, 2, size=(20, 4))
    weights = rng.random(20)
    with jax.enable_x64(True):
        actual = moments(Site("v", (4,), (0.0, 1.0)), data, weights, chunk_size=6)
        assert actual.covariance.dtype == jnp.float64
        assert_moments_close(actual, numpy_moments(data, weights), atol=1e-12)


def test_covariance_symmetric():
    rng = np.random.default_rng(6)
    data = rng.integers(0, 4, size=(500, 10))
    actual = moments(Site("s", (10,), (0, 1, 2, 3)), data, rng.random(500))
    np.testing.assert_array_equal(actual.covariance, actual.covariance.T)


# -- comparison ---------------------------------------------------------------------


def potts_moments(seed=7):
    data = np.random.default_rng(seed).integers(0, 3, size=(100, 5))
    return moments(Site("s", (5,), (0, 1, 2)), data)


def test_compare_with_itself_is_one():
    reference = potts_moments()
    comparison = compare_moments(reference, reference)
    assert isinstance(comparison, MomentComparison)
    for field, value in comparison._asdict().items():
        assert float(value) == pytest.approx(1.0, abs=1e-5), field


def test_compare_half_correlations_slope():
    reference = potts_moments()
    weaker = reference._replace(
        mean=0.5 * reference.mean, covariance=0.5 * reference.covariance
    )
    comparison = compare_moments(reference, weaker)
    assert float(comparison.covariance_slope) == pytest.approx(0.5, rel=1e-5)
    assert float(comparison.covariance_pearson) == pytest.approx(1.0, abs=1e-5)
    assert float(comparison.mean_slope) == pytest.approx(0.5, rel=1e-5)
    assert float(comparison.mean_pearson) == pytest.approx(1.0, abs=1e-5)


def test_compare_slope_has_intercept():
    reference = potts_moments()
    shifted = reference._replace(covariance=reference.covariance + 0.1)
    comparison = compare_moments(reference, shifted)
    assert float(comparison.covariance_slope) == pytest.approx(1.0, rel=1e-5)


def test_compare_ignores_same_element_entries():
    """Only pairs of distinct elements i < j enter the two-point comparison."""
    reference = potts_moments()
    same_element = reference.element[:, None] == reference.element[None, :]
    noise = np.random.default_rng(8).normal(size=same_element.shape)
    changed = reference.covariance + np.where(same_element, noise, 0.0)
    comparison = compare_moments(reference, reference._replace(covariance=changed))
    assert float(comparison.covariance_slope) == pytest.approx(1.0, rel=1e-5)
    assert float(comparison.covariance_pearson) == pytest.approx(1.0, abs=1e-5)


def test_compare_noisy_correlations_below_one():
    reference = potts_moments()
    noise = np.random.default_rng(9).normal(size=reference.covariance.shape)
    noisy = reference._replace(covariance=reference.covariance + 0.02 * noise)
    comparison = compare_moments(reference, noisy)
    assert float(comparison.covariance_pearson) < 0.9


def test_exact_samples_match_enumeration():
    """20000 exact draws from a 6-unit RBM agree with its enumerated moments.

    Each sampled statistic y_k = z_k + ε_k has standard error s_k. The test
    assumes |ε_k| ≤ δ_k = 5 s_k + |C_k| / N (five standard errors plus the 1/N
    bias of the covariance), which fails for some k with probability below
    21 · 5.7e-7 ≈ 1.2e-5 under the normal approximation. With z̃ = z − z̄, this
    gives r ≥ sqrt(1 − ‖δ‖² / ‖z̃‖²) and |slope − 1| ≤ Σ_k |z̃_k| δ_k / ‖z̃‖².
    """
    num_visible, num_samples = 6, 20000
    params = rbm_params(num_visible, 3, seed=11, scale=3.0)
    probs = brute_force_visible_probs(params, num_visible, 3)
    states = all_binary(num_visible)
    rng = np.random.default_rng(12)
    samples = states[rng.choice(len(states), size=num_samples, p=probs)]

    rbm = BernoulliRBM(num_visible, 3)
    exact = moments(rbm, states, probs)
    comparison = compare_moments(exact, moments(rbm, samples))

    mean = probs @ states
    centred = states - mean
    rows, cols = np.triu_indices(num_visible, k=1)
    products = centred[:, rows] * centred[:, cols]
    covariance = probs @ products
    pair_errors = np.sqrt((probs @ products**2 - covariance**2) / num_samples)
    mean_errors = np.sqrt(mean * (1 - mean) / num_samples)
    np.testing.assert_allclose(exact.mean, mean, atol=1e-6)
    np.testing.assert_allclose(exact.covariance[rows, cols], covariance, atol=1e-6)

    for name, values, errors, bias in (
        ("mean", mean, mean_errors, 0.0),
        ("covariance", covariance, pair_errors, np.abs(covariance) / num_samples),
    ):
        deviation = 5 * errors + bias
        spread = values - values.mean()
        relative = np.linalg.norm(deviation) / np.linalg.norm(spread)
        slope_bound = np.abs(spread) @ deviation / np.sum(spread**2)
        # The bounds must be tight enough that a wrong estimator would fail.
        assert relative < 0.25, name
        assert slope_bound < 0.2, name
        pearson = float(getattr(comparison, f"{name}_pearson"))
        slope = float(getattr(comparison, f"{name}_slope"))
        assert pearson >= np.sqrt(1 - relative**2), name
        assert abs(slope - 1) <= slope_bound, name


def test_compare_single_element_is_nan():
    single = moments(Site("v", (1,), (0.0, 1.0)), np.array([[0.0], [1.0]]))
    comparison = compare_moments(single, single)
    assert np.isnan(float(comparison.covariance_pearson))
    assert np.isnan(float(comparison.covariance_slope))


# -- invalid arguments --------------------------------------------------------------


def test_non_binary_data_rejected():
    with pytest.raises(ValueError, match=r"`data` \(site `v`\) contains the value 2"):
        moments(Site("v", (3,), (0.0, 1.0)), np.array([[0, 2, 1]]))


def test_out_of_range_state_rejected():
    with pytest.raises(ValueError, match=r"`data` \(site `s`\) contains the value 3"):
        moments(Site("s", (2,), (0, 1, 2)), np.array([[0, 3]]))


def test_model_data_rejected():
    rbm = BernoulliRBM(3, 2)
    with pytest.raises(ValueError, match=r"`data` \(site `v`\) must have shape"):
        moments(rbm, np.ones((2, 4)))


def test_missing_site_rejected():
    sites = [Site("x", (2,), (0.0, 1.0)), Site("z", (1,), (0, 1))]
    with pytest.raises(ValueError, match=r"`data` must have the keys \['x', 'z'\]"):
        moments(sites, {"x": np.ones((2, 2))})


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.array([1.0, -1.0]), "`weights` contains the negative value -1.0"),
        (np.ones(3), r"`weights` must have shape \(2,\)"),
        (np.array([np.nan, 1.0]), "`weights` contains the non-finite value nan"),
    ],
)
def test_invalid_weights_rejected(weights, message):
    with pytest.raises(ValueError, match=message):
        moments(Site("v", (3,), (0.0, 1.0)), np.ones((2, 3)), weights)


def test_invalid_chunk_size_rejected():
    with pytest.raises(ValueError, match="`chunk_size` must be a positive integer"):
        moments(Site("v", (3,), (0.0, 1.0)), np.ones((2, 3)), chunk_size=0)


def test_invalid_model_or_sites_rejected():
    with pytest.raises(TypeError, match="`model_or_sites` must be an EnergyModel"):
        moments("v", np.ones((2, 3)))


def test_compare_layout_mismatch_rejected():
    binary = moments(Site("v", (3,), (0.0, 1.0)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="`model_moments` has 15 features"):
        compare_moments(binary, potts_moments())


def test_compare_non_moments_rejected():
    reference = potts_moments()
    with pytest.raises(TypeError, match="`model_moments` must be a Moments"):
        compare_moments(reference, reference.covariance)


def test_moments_is_named_tuple():
    reference = potts_moments()
    assert isinstance(reference, Moments)
    assert reference.mean.shape == (15,)
    assert reference.covariance.shape == (15, 15)
