"""Fit a binary RBM to handwritten digits by persistent contrastive divergence.

The data are the 1797 8×8 digits that ship with scikit-learn (UCI optical
recognition of handwritten digits), binarised at intensity 8 of 16 and split
80/20 into training and test images with a fixed seed. A Bernoulli–Bernoulli
RBM with 64 visible units is trained with PCD; after every few epochs the exact
log-likelihood of the training and test images is computed by summing the
hidden layer out analytically and enumerating all of its 2^m states. The
independent-pixels model (visible biases only, fitted by maximum likelihood on
the training images) is the baseline.

At the end the persistent chains run at the final parameters, and their
energy trace is summarised by R-hat and ESS (arviz-stats); checkpoints at
epochs 1, 2, 4, 8, ... compare chains started from data with chains started
from noise. The script writes to the output folder: ``particles.png`` (fantasy
particles beside real digits), ``learning_curves.png``, ``moments.png`` (model
against data pixel means and connected correlations), ``filters.png`` (the
hidden units' weights), ``trace.png`` and ``rank.png`` (arviz-plots views of the
chains' energy), ``chain_summary.csv``, ``diagnostics.nc`` (every checkpoint and
the history as one ArviZ DataTree) and ``metrics.json``.

Run ``python examples/rbm_digits.py --help`` for the options.
"""

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from numpyro_ebm.data import load_binary_digits
from numpyro_ebm.diagnostics import (
    TrainingMonitor,
    chain_summary,
    check_mixing,
    fantasy_trace,
    plot_filters,
    plot_learning_curves,
    plot_moments,
    plot_particles,
    plot_rank,
    plot_trace,
)
from numpyro_ebm.estimators import compare_moments, log_partition, moments
from numpyro_ebm.learning import MaximumLikelihood
from numpyro_ebm.models import BernoulliRBM
from numpyro_ebm.models.rbm import base_rate_bias

# The exact likelihood enumerates 2^hidden states; 2^22 take seconds per evaluation.
MAX_HIDDEN = 22


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--hidden", type=int, default=16, help="number of hidden units")
    parser.add_argument("--epochs", type=int, default=100, help="passes over the data")
    parser.add_argument(
        "--learning-rate", type=float, default=0.05, help="SGD step size"
    )
    parser.add_argument("--batch-size", type=int, default=10, help="images per update")
    parser.add_argument("--chains", type=int, default=100, help="persistent chains")
    parser.add_argument("--sweeps", type=int, default=1, help="Gibbs sweeps per update")
    parser.add_argument(
        "--eval-every", type=int, default=1, help="epochs between exact evaluations"
    )
    parser.add_argument(
        "--trace-sweeps", type=int, default=1000, help="sweeps in the final chain trace"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--output", type=Path, default=Path("out/rbm_digits"), help="output folder"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar"
    )
    return parser.parse_args(argv)


def independent_log_likelihood(train: np.ndarray, images: np.ndarray) -> float:
    """Average log-likelihood (nats per image) of the maximum-likelihood product model."""
    bias = base_rate_bias(train, pseudocount=1.0)
    log_z = jnp.sum(jax.nn.softplus(bias))
    return float(jnp.mean(images @ bias) - log_z)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if not 1 <= args.hidden <= MAX_HIDDEN:
        raise SystemExit(
            f"--hidden must be between 1 and {MAX_HIDDEN}: the exact log-likelihood "
            f"enumerates all 2^hidden hidden states; got {args.hidden}."
        )
    args.output.mkdir(parents=True, exist_ok=True)
    train, test, _, _ = load_binary_digits(seed=0)

    rbm = BernoulliRBM(
        64,
        args.hidden,
        visible_bias=base_rate_bias(train),
        rng_key=jax.random.key(args.seed),
    )
    learner = MaximumLikelihood(
        rbm,
        optax.sgd(args.learning_rate),
        num_chains=args.chains,
        num_sweeps=args.sweeps,
    )

    baseline_train = independent_log_likelihood(train, train)
    baseline_test = independent_log_likelihood(train, test)

    @jax.jit
    def exact_log_likelihoods(params):
        # One log Z serves both data sets.
        log_z = log_partition(rbm, params)
        return {
            "train": -jnp.mean(rbm.energy(params, train)) - log_z,
            "test": -jnp.mean(rbm.energy(params, test)) - log_z,
        }

    def epoch_metrics(params):
        values = {k: float(v) for k, v in exact_log_likelihoods(params).items()}
        values["independent_test"] = baseline_test
        return values

    # Checkpoints of the chains at epochs 1, 2, 4, 8, ...: R-hat, ESS and
    # chains started from data against chains started from noise.
    monitor = TrainingMonitor(
        rbm,
        learner.kernel,
        jax.random.key(args.seed + 3),
        data=train,
        num_sweeps=100,
        num_chains=min(args.chains, 32),
        warn=False,
    )
    start = time.perf_counter()
    result = learner.run(
        jax.random.key(args.seed + 1),
        train,
        num_epochs=args.epochs,
        batch_size=args.batch_size,
        metrics=epoch_metrics,
        callbacks=[monitor],
        metrics_every=args.eval_every,
        progress_bar=not args.no_progress,
    )
    seconds = time.perf_counter() - start

    trace = fantasy_trace(
        jax.random.key(args.seed + 2),
        rbm,
        learner.kernel,
        result.chains,
        result.params,
        num_sweeps=args.trace_sweeps,
        statistics={"active_pixels": lambda x: jnp.sum(x["v"])},
        include_sites=True,
    )
    # Every draw of every chain, for the model's moments.
    draws = trace.posterior["v"].values.reshape(-1, 64)
    trace["posterior"] = trace.posterior.to_dataset().drop_vars("v")
    mixing = check_mixing(trace)
    monitor.checkpoint(args.epochs, result.state)
    diagnostics = monitor.to_datatree(result.history)
    diagnostics["final_trace"] = trace
    diagnostics.to_netcdf(args.output / "diagnostics.nc", engine="h5netcdf")

    history = result.history
    metrics = {
        "train_log_likelihood": float(history.metrics["train"][-1]),
        "test_log_likelihood": float(history.metrics["test"][-1]),
        "independent_train_log_likelihood": baseline_train,
        "independent_test_log_likelihood": baseline_test,
        "max_rhat": mixing["max_rhat"],
        "min_ess": min(mixing["min_ess_bulk"], mixing["min_ess_tail"]),
        "training_seconds": seconds,
        "units": "nats per image",
        "config": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
        },
    }

    print("\nexact log-likelihood (nats per image)")
    print("  epoch     train      test   independent pixels (test)")
    count = history.metric_epochs.size
    rows = sorted({0, *range(9, count, 10), count - 1})
    for row in rows:
        print(
            f"  {history.metric_epochs[row]:5d}  {history.metrics['train'][row]:8.3f}  "
            f"{history.metrics['test'][row]:8.3f}  {baseline_test:8.3f}"
        )
    print(f"\nafter {args.epochs} epochs (nats per image)")
    rbm_label = f"RBM 64-{args.hidden}"
    print(
        f"  {rbm_label:<20} train {metrics['train_log_likelihood']:8.3f}"
        f"   test {metrics['test_log_likelihood']:8.3f}"
    )
    print(
        f"  {'independent pixels':<20} train {baseline_train:8.3f}"
        f"   test {baseline_test:8.3f}"
    )
    print(f"  training time: {seconds:.1f} s")
    print(
        f"\nfantasy chains at the final parameters ({args.chains} chains, "
        f"{args.trace_sweeps} sweeps):"
    )
    print(chain_summary(trace).to_string())

    visible = np.asarray(result.chains.position["v"])
    plot_particles(
        {"fantasy particles": visible, "training digits": train},
        (8, 8),
        path=args.output / "particles.png",
    )
    data_moments = moments(rbm, train)
    model_moments = moments(rbm, draws)
    plot_moments(data_moments, model_moments, path=args.output / "moments.png")
    comparison = compare_moments(data_moments, model_moments)
    metrics["covariance_pearson"] = float(comparison.covariance_pearson)
    metrics["covariance_slope"] = float(comparison.covariance_slope)
    plot_filters(
        rbm.constrain(result.params)["weights"],
        (8, 8),
        path=args.output / "filters.png",
    )
    plot_trace(trace, var_names=["energy"], path=args.output / "trace.png")
    plot_rank(trace, var_names=["energy"], path=args.output / "rank.png")
    chain_summary(trace).to_csv(args.output / "chain_summary.csv")
    plot_learning_curves(
        history,
        updates_per_epoch=int(np.ceil(train.shape[0] / args.batch_size)),
        metric_groups=[["train", "test"]],
        metric_label="exact log-likelihood (nats per image)",
        reference_lines={"independent pixels (test)": baseline_test},
        path=args.output / "learning_curves.png",
    )
    plt.close("all")
    (args.output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(
        "\nwrote particles.png, learning_curves.png, moments.png, filters.png, "
        "trace.png, rank.png, chain_summary.csv, diagnostics.nc and metrics.json "
        f"to {args.output}"
    )
    return metrics


if __name__ == "__main__":
    main()
