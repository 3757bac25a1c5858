import itertools

import jax
import numpy as np
import pytest
from scipy import stats

from numpyro_ebm.models import BernoulliRBM


def all_binary(n: int) -> np.ndarray:
    """Every configuration of n binary units, in lexicographic order."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def rbm_params(num_visible, num_hidden, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return {
        "weights": jax.numpy.asarray(
            scale * rng.normal(size=(num_visible, num_hidden)), dtype=float
        ),
        "visible_bias": jax.numpy.asarray(
            0.5 * rng.normal(size=num_visible), dtype=float
        ),
        "hidden_bias": jax.numpy.asarray(
            0.5 * rng.normal(size=num_hidden), dtype=float
        ),
    }


def brute_force_visible_probs(params, num_visible, num_hidden) -> np.ndarray:
    """p(v) of an RBM by summing exp(-E(v, h)) over all joint states, in float64."""
    w = np.asarray(params["weights"], dtype=np.float64)
    b = np.asarray(params["visible_bias"], dtype=np.float64)
    c = np.asarray(params["hidden_bias"], dtype=np.float64)
    v, h = all_binary(num_visible), all_binary(num_hidden)
    neg_energy = (v @ b)[:, None] + (h @ c)[None, :] + v @ w @ h.T
    joint = np.exp(neg_energy - neg_energy.max())
    marginal = joint.sum(axis=1)
    return marginal / marginal.sum()


@pytest.fixture
def tiny_rbm():
    """A 5-visible, 3-hidden RBM with strong random couplings and its parameters."""
    rbm = BernoulliRBM(5, 3)
    return rbm, rbm_params(5, 3, seed=1)


def state_index(samples: np.ndarray, domain_size: int = 2) -> np.ndarray:
    """Index of each configuration in lexicographic order of its digits."""
    samples = np.asarray(samples).reshape(samples.shape[0], -1).astype(int)
    powers = domain_size ** np.arange(samples.shape[1] - 1, -1, -1)
    return samples @ powers


def chi_square_pvalue(indices: np.ndarray, probs: np.ndarray) -> float:
    """Pearson chi-square p-value, pooling states whose expected count is below 5."""
    counts = np.bincount(indices, minlength=probs.size)
    assert counts.size == probs.size, "a sample fell outside the exact support"
    expected = probs * indices.size
    small = expected < 5
    observed = np.append(counts[~small], counts[small].sum())
    expected = np.append(expected[~small], expected[small].sum())
    if expected[-1] == 0:
        observed, expected = observed[:-1], expected[:-1]
    return stats.chisquare(observed, expected).pvalue


def run_chains(kernel, params, position, num_sweeps, seed=0):
    """Start one chain per configuration in ``position`` and run ``num_sweeps`` steps."""
    count = jax.tree.leaves(position)[0].shape[0]
    key_init, key_run = jax.random.split(jax.random.key(seed))
    states = jax.vmap(kernel.init, (0, 0, None))(
        jax.random.split(key_init, count), position, params
    )

    @jax.jit
    def run(states, key):
        def sweep(states, key):
            keys = jax.random.split(key, count)
            states, _ = jax.vmap(kernel.step, (0, 0, None))(keys, states, params)
            return states, None

        return jax.lax.scan(sweep, states, jax.random.split(key, num_sweeps))[0]

    return run(states, key_run)
