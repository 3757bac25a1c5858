"""Fit a Gaussian energy to samples with HMC fantasy particles and check it against the MLE.

The data are synthetic: ``--samples`` draws from a ``--dim``-dimensional
Gaussian whose mean and covariance (a random factor F, covariance
F Fᵀ / 4 + I / 2) are drawn with ``--seed``. The model is
``GaussianEnergy``, E(x) = ½ (x − μ)ᵀ L Lᵀ (x − μ), trained by maximum
likelihood with persistent HMC fantasy particles (NumPyro's HMC, step size
adapted towards acceptance 0.8). The maximum-likelihood estimate of this
model is known in closed form: the sample mean and the sample covariance
with divisor N. The script prints the learned mean and covariance beside it.

Outputs in ``--output``:

* ``fit.png``: data, fantasy particles and the 2σ ellipses of the learned and
  closed-form covariances in the first two coordinates, beside the
  acceptance rate and step size per update;
* ``learning_curves.png``;
* ``metrics.json`` with ``mean_relative_error`` (‖μ − x̄‖ / ‖x̄‖) and
  ``covariance_relative_error`` (the Frobenius norm of the difference over
  that of the sample covariance).

Run ``python examples/gaussian_mle.py --help`` for the options.
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

from numpyro_ebm.diagnostics import plot_learning_curves
from numpyro_ebm.kernels.hmc import hmc, nuts
from numpyro_ebm.kernels.langevin import mala
from numpyro_ebm.learning import MaximumLikelihood
from numpyro_ebm.models.gaussian import GaussianEnergy

KERNELS = ("hmc", "nuts", "mala")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=5, help="dimension of x")
    parser.add_argument("--samples", type=int, default=1000, help="training samples")
    parser.add_argument("--chains", type=int, default=1000, help="persistent chains")
    parser.add_argument("--epochs", type=int, default=200, help="passes over the data")
    parser.add_argument("--batch-size", type=int, default=100, help="data per update")
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=0.05,
        help="initial Adam step size, decayed by 0.3 every 300 updates",
    )
    parser.add_argument(
        "--kernel", choices=KERNELS, default="hmc", help="fantasy-particle kernel"
    )
    parser.add_argument(
        "--num-steps", type=int, default=5, help="leapfrog steps per HMC transition"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--output", type=Path, default=Path("out/gaussian_mle"), help="output folder"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar"
    )
    args = parser.parse_args(argv)
    for name in ("dim", "samples", "chains", "epochs", "batch_size", "num_steps"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.dim < 2:
        parser.error("--dim must be at least 2 for the plot of the first two axes")
    return args


def make_data(dim: int, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    factor = 0.5 * rng.normal(size=(dim, dim))
    covariance = factor @ factor.T + 0.5 * np.eye(dim)
    mean = rng.normal(scale=2.0, size=dim)
    return rng.multivariate_normal(mean, covariance, size=count).astype(np.float32)


def make_kernel(name: str, model: GaussianEnergy, num_steps: int):
    if name == "hmc":
        return hmc(model, step_size=0.3, num_steps=num_steps)
    if name == "nuts":
        return nuts(model, step_size=0.3)
    return mala(model, step_size=0.3)


def relative_error(estimate, reference):
    """Frobenius (or Euclidean) norm of the difference over that of ``reference``."""
    return jnp.linalg.norm(estimate - reference) / jnp.linalg.norm(reference)


def ellipse(mean, covariance, scale=2.0, points=200):
    """Points of the ``scale``-σ ellipse of a 2-D Gaussian."""
    angles = np.linspace(0.0, 2.0 * np.pi, points)
    circle = np.stack([np.cos(angles), np.sin(angles)])
    factor = np.linalg.cholesky(np.asarray(covariance, dtype=np.float64))
    return (np.asarray(mean)[:, None] + scale * factor @ circle).T


def plot_fit(data, fantasy, learned, closed_form, history, path):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    ax = axes[0]
    ax.scatter(data[:, 0], data[:, 1], s=4, alpha=0.3, label="data")
    ax.scatter(fantasy[:, 0], fantasy[:, 1], s=4, alpha=0.3, label="fantasy particles")
    for (mean, covariance), label, style in (
        (closed_form, "closed-form MLE, 2σ", "k-"),
        (learned, "learned, 2σ", "r--"),
    ):
        curve = ellipse(mean[:2], covariance[:2, :2])
        ax.plot(curve[:, 0], curve[:, 1], style, label=label)
    ax.set_xlabel("x₁")
    ax.set_ylabel("x₂")
    ax.legend(loc="best", fontsize="small")
    ax.set_title("first two coordinates")

    ax = axes[1]
    updates = np.arange(1, history.energy_gap.size + 1)
    ax.plot(updates, history.kernel_info["acceptance_rate"], label="acceptance rate")
    ax.plot(updates, history.kernel_info["step_size"], label="step size")
    ax.set_xlabel("update")
    ax.set_title("kernel diagnostics (mean over chains)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    data = make_data(args.dim, args.samples, args.seed)
    sample_mean = data.mean(axis=0)
    sample_covariance = np.cov(data.T, bias=True)

    model = GaussianEnergy(args.dim)
    schedule = optax.exponential_decay(
        args.learning_rate, transition_steps=300, decay_rate=0.3
    )
    learner = MaximumLikelihood(
        model,
        optax.adam(schedule),
        kernel=make_kernel(args.kernel, model, args.num_steps),
        num_chains=args.chains,
    )

    @jax.jit
    def errors(params):
        return {
            "mean_relative_error": relative_error(model.mean(params), sample_mean),
            "covariance_relative_error": relative_error(
                model.covariance(params), sample_covariance
            ),
        }

    def float_errors(params):
        return {name: float(value) for name, value in errors(params).items()}

    start = time.perf_counter()
    result = learner.run(
        jax.random.key(args.seed + 1),
        data,
        num_epochs=args.epochs,
        batch_size=min(args.batch_size, args.samples),
        metrics=float_errors,
        metrics_every=max(1, args.epochs // 50),
        chains_from_data=True,
        progress_bar=not args.no_progress,
    )
    seconds = time.perf_counter() - start

    learned_mean = np.asarray(model.mean(result.params))
    learned_covariance = np.asarray(model.covariance(result.params))
    final = float_errors(result.params)
    info = result.history.kernel_info
    metrics = {
        **final,
        "learned_mean": learned_mean.tolist(),
        "sample_mean": sample_mean.tolist(),
        "learned_covariance": learned_covariance.tolist(),
        "sample_covariance": sample_covariance.tolist(),
        "final_acceptance_rate": float(info["acceptance_rate"][-1]),
        "final_step_size": float(info["step_size"][-1]),
        "training_seconds": seconds,
        "config": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
        },
    }

    np.set_printoptions(precision=4, suppress=True)
    print("\nmean: learned, then closed-form MLE (sample mean)")
    print(learned_mean)
    print(sample_mean)
    print("\ncovariance: learned, then closed-form MLE (sample covariance, 1/N)")
    print(learned_covariance)
    print(sample_covariance)
    print(
        f"\nrelative error: mean {final['mean_relative_error']:.4f}, "
        f"covariance {final['covariance_relative_error']:.4f}"
    )
    print(
        f"acceptance rate {metrics['final_acceptance_rate']:.3f} at step size "
        f"{metrics['final_step_size']:.3f}; training time {seconds:.1f} s"
    )

    plot_fit(
        data,
        np.asarray(result.chains.position["x"]),
        (learned_mean, learned_covariance),
        (sample_mean, sample_covariance),
        result.history,
        args.output / "fit.png",
    )
    plot_learning_curves(
        result.history,
        updates_per_epoch=int(np.ceil(args.samples / args.batch_size)),
        metric_groups=[["mean_relative_error", "covariance_relative_error"]],
        path=args.output / "learning_curves.png",
    )
    plt.close("all")
    (args.output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"\nwrote fit.png, learning_curves.png and metrics.json to {args.output}")
    return metrics


if __name__ == "__main__":
    main()
