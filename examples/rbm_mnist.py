"""Fit a large binary RBM to MNIST digits and estimate its likelihood by AIS.

The data are the 10,000 MNIST test digits (LeCun, Cortes & Burges), read from
the IDX files in the folder given by ``--data`` (default
``$NUMPYRO_EBM_DATA/mnist``). Pixels are binarised by thresholding
intensity/255 at 0.5, and the first ``--train-size`` images (8,000 by default)
train the model while the remaining ones are the test set.

A Bernoulli–Bernoulli RBM with 784 visible and ``--hidden`` hidden units (500 by
default) is trained by persistent contrastive divergence. Its log partition
function is then estimated by annealed importance sampling from the base-rate
model (independent pixels fitted to the training images), following
Salakhutdinov & Murray (ICML 2008), and by reverse AIS started from the
persistent chains after extra sweeps, which gives the complementary upper
estimate. The script prints the test log-likelihood with its standard error and
the reverse-AIS value, and writes ``particles.png``, ``filters.png``,
``learning_curves.png`` and ``metrics.json`` to the output folder.

For reference, Salakhutdinov & Murray report −86.34 nats for a CD-25 RBM with
500 hidden units trained on the 60,000 MNIST training digits; this script trains
on a fraction of that for a few minutes, so expect a lower value.
"""

import argparse
import json
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from numpyro_ebm.data import DATA_DIR_VARIABLE, load_mnist
from numpyro_ebm.diagnostics import plot_learning_curves, plot_particles
from numpyro_ebm.estimators import ais, ais_log_likelihood, rbm_path, reverse_ais
from numpyro_ebm.learning import MaximumLikelihood
from numpyro_ebm.models import BernoulliRBM
from numpyro_ebm.models.rbm import base_rate_bias


def default_data_folder() -> Path:
    if DATA_DIR_VARIABLE in os.environ:
        return Path(os.environ[DATA_DIR_VARIABLE]) / "mnist"
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help=f"folder with t10k-images-idx3-ubyte.gz (default ${DATA_DIR_VARIABLE}/mnist)",
    )
    parser.add_argument("--train-size", type=int, default=8000, help="training images")
    parser.add_argument(
        "--hidden", type=int, default=500, help="number of hidden units"
    )
    parser.add_argument("--epochs", type=int, default=15, help="passes over the data")
    parser.add_argument(
        "--learning-rate", type=float, default=0.01, help="SGD step size"
    )
    parser.add_argument("--momentum", type=float, default=0.0, help="SGD momentum")
    parser.add_argument("--batch-size", type=int, default=100, help="images per update")
    parser.add_argument("--chains", type=int, default=100, help="persistent chains")
    parser.add_argument("--sweeps", type=int, default=1, help="Gibbs sweeps per update")
    parser.add_argument(
        "--l2", type=float, default=1e-4, help="L2 penalty on the weights"
    )
    parser.add_argument("--ais-runs", type=int, default=100, help="AIS runs")
    parser.add_argument(
        "--ais-betas",
        type=int,
        default=3000,
        help="inverse temperatures in the AIS path",
    )
    parser.add_argument(
        "--burn-in",
        type=int,
        default=1000,
        help="extra Gibbs sweeps of the chains before reverse AIS",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--output", type=Path, default=Path("out/rbm_mnist"), help="output folder"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar"
    )
    return parser.parse_args(argv)


def run_chains(kernel, chains, params, rng_key, num_sweeps):
    """Advance vmapped chains ``num_sweeps`` steps at fixed parameters."""

    @jax.jit
    def run(chains, rng_key):
        def sweep(chains, key):
            keys = jax.random.split(key, jax.tree.leaves(chains.position)[0].shape[0])
            return jax.vmap(kernel.step, (0, 0, None))(keys, chains, params)[0], None

        return jax.lax.scan(sweep, chains, jax.random.split(rng_key, num_sweeps))[0]

    return run(chains, rng_key)


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    folder = args.data if args.data is not None else default_data_folder()
    images, _ = load_mnist(folder, threshold=0.5)
    images = images.astype(np.float32)
    if not 0 < args.train_size < images.shape[0]:
        raise ValueError(
            f"`--train-size` must be between 1 and {images.shape[0] - 1}; got "
            f"{args.train_size}."
        )
    train, test = images[: args.train_size], images[args.train_size :]

    base_bias = base_rate_bias(train)
    rbm = BernoulliRBM(
        784, args.hidden, visible_bias=base_bias, rng_key=jax.random.key(args.seed)
    )
    learner = MaximumLikelihood(
        rbm,
        optax.sgd(args.learning_rate, momentum=args.momentum or None),
        num_chains=args.chains,
        num_sweeps=args.sweeps,
        penalty=None if args.l2 == 0 else _l2_penalty(args.l2),
    )
    start = time.perf_counter()
    result = learner.run(
        jax.random.key(args.seed + 1),
        train,
        num_epochs=args.epochs,
        batch_size=args.batch_size,
        progress_bar=not args.no_progress,
    )
    train_seconds = time.perf_counter() - start
    params = result.params

    path = rbm_path(rbm, base_visible_bias=base_bias)
    start = time.perf_counter()
    forward = ais(
        jax.random.key(args.seed + 2),
        path,
        params,
        num_runs=args.ais_runs,
        num_betas=args.ais_betas,
    )
    chains = run_chains(
        learner.kernel,
        result.chains,
        params,
        jax.random.key(args.seed + 3),
        args.burn_in,
    )
    backward = reverse_ais(
        jax.random.key(args.seed + 4),
        path,
        params,
        chains.position,
        num_betas=args.ais_betas,
    )
    ais_seconds = time.perf_counter() - start

    test_estimate = ais_log_likelihood(rbm, params, test, forward)
    train_estimate = ais_log_likelihood(rbm, params, train, forward)
    reverse_test = ais_log_likelihood(rbm, params, test, backward)
    independent = float(
        jnp.mean(test @ base_bias) - jnp.sum(jax.nn.softplus(base_bias))
    )

    metrics = {
        "ais_test_log_likelihood": float(test_estimate.value),
        "ais_standard_error": float(test_estimate.standard_error),
        "reverse_ais_test_log_likelihood": float(reverse_test.value),
        "reverse_ais_standard_error": float(reverse_test.standard_error),
        "ais_train_log_likelihood": float(train_estimate.value),
        "ais_log_z": float(forward.log_z),
        "reverse_ais_log_z": float(backward.log_z),
        "ais_effective_sample_size": float(forward.effective_sample_size),
        "independent_test_log_likelihood": independent,
        "num_hidden": args.hidden,
        "train_size": int(train.shape[0]),
        "test_size": int(test.shape[0]),
        "training_seconds": train_seconds,
        "ais_seconds": ais_seconds,
        "units": "nats per image",
        "binarisation": "intensity / 255 >= 0.5",
        "config": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
        },
    }

    print(
        f"\nRBM 784-{args.hidden}, {train.shape[0]} training and {test.shape[0]} test "
        f"images, {args.epochs} epochs ({train_seconds:.0f} s)"
    )
    print(
        f"  AIS ({args.ais_runs} runs, {args.ais_betas} temperatures): "
        f"log Z = {float(forward.log_z):.2f} ± {float(forward.standard_error):.2f}, "
        f"ESS {float(forward.effective_sample_size):.0f}"
    )
    print(
        f"  reverse AIS from the persistent chains: log Z = {float(backward.log_z):.2f}"
    )
    print(
        f"  test log-likelihood:  AIS {metrics['ais_test_log_likelihood']:.2f} ± "
        f"{metrics['ais_standard_error']:.2f}   reverse AIS "
        f"{metrics['reverse_ais_test_log_likelihood']:.2f}   (nats per image)"
    )
    print(f"  independent pixels:   {independent:.2f}")

    plot_particles(
        {"fantasy particles": np.asarray(chains.position["v"]), "test digits": test},
        (28, 28),
        max_images=50,
        path=args.output / "particles.png",
    )
    weights = np.asarray(rbm.constrain(params)["weights"]).T
    scaled = (weights - weights.min(axis=1, keepdims=True)) / np.ptp(
        weights, axis=1, keepdims=True
    )
    plot_particles(
        {"hidden-unit filters": scaled},
        (28, 28),
        max_images=100,
        path=args.output / "filters.png",
    )
    plot_learning_curves(
        result.history,
        updates_per_epoch=int(np.ceil(train.shape[0] / args.batch_size)),
        path=args.output / "learning_curves.png",
    )
    plt.close("all")
    (args.output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(
        f"\nwrote particles.png, filters.png, learning_curves.png and metrics.json to "
        f"{args.output}"
    )
    return metrics


def _l2_penalty(coefficient: float):
    from numpyro_ebm.learning import Penalty

    return Penalty(l2={"weights": coefficient})


if __name__ == "__main__":
    main()
