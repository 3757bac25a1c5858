import itertools

import jax
import numpy as np
import pytest

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
