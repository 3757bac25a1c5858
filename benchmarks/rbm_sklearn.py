"""Compare numpyro_ebm's PCD training of a binary RBM with scikit-learn's BernoulliRBM.

Data: the 1797 8×8 digits that ship with scikit-learn, binarised at intensity
8 of 16 and split 80/20 (1437 training, 360 test images) by
``numpyro_ebm.data.load_binary_digits(seed=0)``. Both libraries get the same
float32 arrays.

For every seed the script trains three RBMs with 64 visible units and the same
number of hidden units, SGD learning rate, batch size and number of epochs:

* scikit-learn's ``BernoulliRBM``: persistent chains, as many as the batch
  size, one Gibbs step per update, update = learning rate × batch-mean
  gradient. It visits the minibatches in the same order every epoch, and the
  last one is shorter (7 images at batch size 10).
* ``MaximumLikelihood`` with ``optax.sgd`` and ``--chains`` persistent chains
  (one block-Gibbs sweep per update). It reshuffles every epoch and pads the
  last minibatch with zero-weight rows.
* the same with as many persistent chains as the batch size.

Each trained model is scored by the exact average log-likelihood (nats per
image) of the training and test images, with log Z computed by enumerating the
2^H hidden states. scikit-learn's ``components_``, ``intercept_visible_`` and
``intercept_hidden_`` are converted to numpyro_ebm parameters first. The
independent-pixels model (a product of Bernoullis fitted by maximum likelihood
on the training images) is the baseline.

Timing, in milliseconds per epoch:

* scikit-learn: wall time of ``fit`` divided by the number of epochs.
* numpyro_ebm: one epoch is run first, which includes compilation and is
  reported separately. Training then continues from that state for the other
  epochs, and their wall time, divided by their count, is the time per epoch.
  It includes the run's set-up (data checks and padding, once per run) and the
  per-epoch divergence check that copies the update metrics to the host.
  Scoring is not timed.

Writes ``metrics.json`` (per-seed numbers and the summary) to ``--output``.

Run from the repository root::

    python benchmarks/rbm_sklearn.py

and ``python benchmarks/rbm_sklearn.py --help`` for the options.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import sklearn
from sklearn.neural_network import BernoulliRBM as SklearnBernoulliRBM

import numpyro_ebm
from numpyro_ebm.data import load_binary_digits
from numpyro_ebm.estimators import log_partition
from numpyro_ebm.learning import MaximumLikelihood
from numpyro_ebm.models import BernoulliRBM
from numpyro_ebm.models.rbm import base_rate_bias

SKLEARN = "sklearn"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3, 4],
        help="random seeds, one training run of each method per seed",
    )
    parser.add_argument("--hidden", type=int, default=16, help="number of hidden units")
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=0.05,
        help="SGD step size applied to the batch-mean gradient",
    )
    parser.add_argument(
        "--batch-size", type=int, default=10, help="training images per update"
    )
    parser.add_argument(
        "--epochs", type=int, default=100, help="passes over the training images"
    )
    parser.add_argument(
        "--chains",
        type=int,
        default=100,
        help="number of persistent chains of the first numpyro_ebm run (a second "
        "run uses --batch-size chains, as scikit-learn does)",
    )
    parser.add_argument(
        "--visible-bias-init",
        choices=["base-rate", "zero"],
        default="base-rate",
        help="initial visible biases of the numpyro_ebm RBMs: log-odds of the "
        "training pixel means (pseudocount 1), or zero as in scikit-learn",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("out/benchmarks/rbm_sklearn"),
        help="folder for metrics.json",
    )
    args = parser.parse_args(argv)

    for name in ("hidden", "learning_rate", "batch_size", "epochs", "chains"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if len(args.seeds) < 2:
        parser.error("--seeds needs at least 2 seeds for a standard deviation")
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 because the first epoch is not timed")
    return args


def independent_log_likelihood(train: np.ndarray, images: np.ndarray) -> float:
    """Return the log-likelihood (nats per image) of the product-of-Bernoullis model."""
    bias = base_rate_bias(train, pseudocount=1.0)
    log_z = jnp.sum(jax.nn.softplus(bias))
    return float(jnp.mean(images @ bias) - log_z)


def make_scorer(rbm: BernoulliRBM, train: np.ndarray, test: np.ndarray):
    """Return a jitted map from parameters to exact train and test log-likelihoods."""

    @jax.jit
    def score(params):
        log_z = log_partition(rbm, params)
        return {
            "train": -jnp.mean(rbm.energy(params, train)) - log_z,
            "test": -jnp.mean(rbm.energy(params, test)) - log_z,
        }

    def score_floats(params):
        return {name: float(value) for name, value in score(params).items()}

    return score_floats


def sklearn_params(model: SklearnBernoulliRBM, rbm: BernoulliRBM) -> dict:
    """Convert a fitted scikit-learn RBM to unconstrained numpyro_ebm parameters."""
    params = {
        "weights": jnp.asarray(model.components_.T, dtype=jnp.float32),
        "visible_bias": jnp.asarray(model.intercept_visible_, dtype=jnp.float32),
        "hidden_bias": jnp.asarray(model.intercept_hidden_, dtype=jnp.float32),
    }
    return rbm.unconstrain(params)


def check_conversion(model: SklearnBernoulliRBM, rbm, params, images) -> None:
    """Raise RuntimeError unless both parameterisations give the same free energy."""
    # scikit-learn's free energy, written out from its public attributes.
    logits = images @ model.components_.T + model.intercept_hidden_
    expected = -images @ model.intercept_visible_ - np.logaddexp(0, logits).sum(1)
    actual = np.asarray(rbm.energy(params, images))
    if not np.allclose(actual, expected, rtol=1e-4, atol=1e-3):
        worst = float(np.max(np.abs(actual - expected)))
        raise RuntimeError(
            "converted scikit-learn parameters give a different free energy "
            f"(max abs difference {worst:.3g}); check the weight layout."
        )


def train_sklearn(
    args, seed: int, train: np.ndarray
) -> tuple[SklearnBernoulliRBM, float]:
    model = SklearnBernoulliRBM(
        n_components=args.hidden,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        n_iter=args.epochs,
        random_state=seed,
    )
    start = time.perf_counter()
    model.fit(train)
    seconds = time.perf_counter() - start
    return model, seconds


def train_numpyro_ebm(learner, init_params, seed: int, train: np.ndarray, args):
    """Train for ``args.epochs`` epochs and return the parameters and timings in seconds."""
    start = time.perf_counter()
    first = learner.run(
        jax.random.key(seed + 1),
        train,
        num_epochs=1,
        batch_size=args.batch_size,
        init_params=init_params,
        progress_bar=False,
    )
    jax.block_until_ready(first.params)
    first_epoch_seconds = time.perf_counter() - start

    start = time.perf_counter()
    result = learner.run(
        jax.random.key(seed + 1),
        train,
        num_epochs=args.epochs - 1,
        batch_size=args.batch_size,
        init_state=first.state,
        progress_bar=False,
    )
    jax.block_until_ready(result.params)
    seconds = time.perf_counter() - start
    return result.params, first_epoch_seconds, seconds


def initial_params(args, seed: int, train: np.ndarray) -> dict:
    """Return initial RBM parameters with N(0, 0.01²) weights and zero hidden biases."""
    visible_bias = (
        base_rate_bias(train) if args.visible_bias_init == "base-rate" else None
    )
    rbm = BernoulliRBM(
        64, args.hidden, visible_bias=visible_bias, rng_key=jax.random.key(seed)
    )
    return rbm.init_params()


def mean_and_sd(values: list[float]) -> dict:
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "sd": float(array.std(ddof=1))}


def numpyro_ebm_chain_counts(args) -> dict[str, int]:
    """Return the numbers of persistent chains of the numpyro_ebm runs, keyed by name."""
    counts = [args.chains, args.batch_size]
    return {f"numpyro_ebm_{count}": count for count in dict.fromkeys(counts)}


def method_labels(args) -> dict[str, str]:
    labels = {SKLEARN: f"scikit-learn BernoulliRBM, {args.batch_size} chains"}
    for method, count in numpyro_ebm_chain_counts(args).items():
        labels[method] = f"numpyro_ebm PCD, {count} chains"
    return labels


def summarise(runs: dict, labels: dict) -> dict:
    summary = {}
    sklearn_ms = mean_and_sd(runs[SKLEARN]["ms_per_epoch"])["mean"]
    for method in labels:
        record = runs[method]
        entry = {
            "label": labels[method],
            "test_log_likelihood": mean_and_sd(record["test_log_likelihood"]),
            "train_log_likelihood": mean_and_sd(record["train_log_likelihood"]),
            "ms_per_epoch": mean_and_sd(record["ms_per_epoch"]),
        }
        entry["time_ratio_to_sklearn"] = entry["ms_per_epoch"]["mean"] / sklearn_ms
        # Seed-by-seed difference from scikit-learn in test log-likelihood.
        difference = np.subtract(
            record["test_log_likelihood"], runs[SKLEARN]["test_log_likelihood"]
        )
        entry["test_minus_sklearn"] = mean_and_sd(difference.tolist())
        if "first_epoch_seconds" in record:
            # Only the first seed compiles because later seeds reuse the learner.
            entry["first_seed_first_epoch_seconds"] = record["first_epoch_seconds"][0]
        summary[method] = entry
    return summary


def format_table(summary: dict, baseline: dict, num_seeds: int) -> str:
    header = (
        f"{'method':<40} {'test LL':>17} {'train LL':>17} {'ms/epoch':>15} {'ratio':>6}"
    )
    lines = [
        f"exact log-likelihood in nats per image, mean ± sd over {num_seeds} seeds",
        header,
        "-" * len(header),
    ]
    for entry in summary.values():
        test, train = entry["test_log_likelihood"], entry["train_log_likelihood"]
        ms = entry["ms_per_epoch"]
        lines.append(
            f"{entry['label']:<40} "
            f"{test['mean']:8.3f} ± {test['sd']:6.3f} "
            f"{train['mean']:8.3f} ± {train['sd']:6.3f} "
            f"{ms['mean']:7.1f} ± {ms['sd']:5.1f} "
            f"{entry['time_ratio_to_sklearn']:6.2f}"
        )
    lines.append(
        f"{'independent pixels':<40} {baseline['test']:8.3f}{'':9} "
        f"{baseline['train']:8.3f}{'':9} {'-':>15} {'-':>6}"
    )
    lines.append("ratio: mean ms/epoch of the method / mean ms/epoch of scikit-learn")
    return "\n".join(lines)


def environment() -> dict:
    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpyro_ebm": getattr(numpyro_ebm, "__version__", "unknown"),
        "sklearn": sklearn.__version__,
        "optax": optax.__version__,
        "processor": platform.processor() or platform.machine(),
        "jax_devices": [str(device) for device in jax.devices()],
    }


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    train, test, _, _ = load_binary_digits(seed=0)

    # One model and one learner per chain count serve every seed, so each
    # learner compiles once. The seed changes only the initial parameters and
    # the random key.
    rbm = BernoulliRBM(64, args.hidden)
    score = make_scorer(rbm, train, test)
    labels = method_labels(args)
    learners = {
        method: MaximumLikelihood(
            rbm, optax.sgd(args.learning_rate), num_chains=count, num_sweeps=1
        )
        for method, count in numpyro_ebm_chain_counts(args).items()
    }
    runs = {method: {"seed": []} for method in labels}

    for seed in args.seeds:
        model, seconds = train_sklearn(args, seed, train)
        params = sklearn_params(model, rbm)
        check_conversion(model, rbm, params, train)
        record = runs[SKLEARN]
        record["seed"].append(seed)
        for name, value in score(params).items():
            record.setdefault(f"{name}_log_likelihood", []).append(value)
        record.setdefault("fit_seconds", []).append(seconds)
        record.setdefault("ms_per_epoch", []).append(1e3 * seconds / args.epochs)

        init_params = initial_params(args, seed, train)
        for method, learner in learners.items():
            params, first_seconds, seconds = train_numpyro_ebm(
                learner, init_params, seed, train, args
            )
            record = runs[method]
            record["seed"].append(seed)
            for name, value in score(params).items():
                record.setdefault(f"{name}_log_likelihood", []).append(value)
            record.setdefault("first_epoch_seconds", []).append(first_seconds)
            record.setdefault("timed_seconds", []).append(seconds)
            ms = 1e3 * seconds / (args.epochs - 1)
            record.setdefault("ms_per_epoch", []).append(ms)

        line = ", ".join(
            f"{method} test {runs[method]['test_log_likelihood'][-1]:.3f}"
            for method in labels
        )
        print(f"seed {seed}: {line}", flush=True)

    baseline = {
        "train": independent_log_likelihood(train, train),
        "test": independent_log_likelihood(train, test),
    }
    summary = summarise(runs, labels)
    print()
    print(format_table(summary, baseline, len(args.seeds)))
    for method, entry in summary.items():
        if method == SKLEARN:
            continue
        difference = entry["test_minus_sklearn"]
        print(
            f"{entry['label']}: test LL minus scikit-learn's, paired by seed, "
            f"{difference['mean']:.3f} ± {difference['sd']:.3f}"
        )
    for entry in summary.values():
        if "first_seed_first_epoch_seconds" in entry:
            print(
                f"{entry['label']}: compilation and first epoch of the first seed "
                f"{entry['first_seed_first_epoch_seconds']:.2f} s (not in ms/epoch)"
            )

    metrics = {
        "units": {
            "log_likelihood": "nats per image",
            "ms_per_epoch": "milliseconds",
            "seconds": "seconds",
        },
        "timing": {
            SKLEARN: "wall time of fit / epochs",
            "numpyro_ebm": "wall time of epochs 2..E / (E - 1); the first epoch, "
            "which includes compilation for the first seed, is in "
            "first_epoch_seconds",
        },
        "initialisation": {
            SKLEARN: "weights N(0, 0.01^2), zero visible and hidden biases, "
            "persistent hidden states zero",
            "numpyro_ebm": "weights N(0, 0.01^2), zero hidden biases, visible biases "
            f"{args.visible_bias_init}, persistent visible states uniform random",
        },
        "config": {
            name: str(value) if isinstance(value, Path) else value
            for name, value in vars(args).items()
        },
        "data": {
            "train_images": int(train.shape[0]),
            "test_images": int(test.shape[0]),
        },
        "environment": environment(),
        "independent_pixels": baseline,
        "runs": runs,
        "summary": summary,
    }
    (args.output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"\nwrote {args.output / 'metrics.json'}")
    return metrics


if __name__ == "__main__":
    main()
