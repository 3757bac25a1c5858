"""Fit a bmDCA Potts model to the Rfam RF00379 alignment and predict contacts.

The alignment (3,827 sequences × 136 positions, alphabet ``-ACGU``) is
reweighted at 80 % identity (M_eff = 1446.30), frequencies get the
pseudocount 1/M_eff, and a fully connected Potts model is trained by
persistent contrastive divergence with local-field Gibbs chains, from the
profile model, until the Pearson correlation between data and model connected
correlations reaches the target or the maximum number of updates is spent.
The settings are adabmDCA 2.0's defaults (η = 0.01, 10 sweeps per update,
target 0.95; Rosset et al. 2025) except for the number of chains: 2,000
instead of 10,000, so that an update takes about a third of a second on two
CPU cores. The trained model is then checked on fresh samples: new chains
started from random sequences and run for ``--fresh-sweeps`` sweeps,
independent of the training chains.

Writes ``metrics.json`` (``pearson``, ``slope``, ``updates``, ``seconds``,
``num_chains``, and ``fresh_pearson``, ``fresh_slope`` of the fresh samples),
``contact_map.png``, ``correlations.png``, ``contacts.tsv`` and the fitted
``params.npz`` (``fields`` h and symmetric ``couplings`` J) to the output
folder. Run with ``--help`` for the options.
"""

import argparse
import json
import os
import time
from pathlib import Path

import jax
import matplotlib.pyplot as plt
import numpy as np

from numpyro_ebm import dca
from numpyro_ebm.data.fasta import read_alignment, sequence_weights
from numpyro_ebm.estimators import moments
from numpyro_ebm.models import Potts

SHARED_MSA = (
    Path(
        os.environ.get(
            "NUMPYRO_EBM_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"
        )
    )
    / "msa"
)
DEFAULTS = {
    "alignment": SHARED_MSA / "RF00379.fasta",
    "alphabet": "rna",
    "output": Path("out/dca_rna"),
    "max_updates": 4000,
    "chains": 2000,
    "fresh_samples": 10_000,
    "lr": dca.DEFAULT_LEARNING_RATE,
}


def parse_args(argv=None, defaults=DEFAULTS, description=None):
    parser = argparse.ArgumentParser(
        description=description or __doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--alignment", type=Path, default=defaults["alignment"])
    parser.add_argument(
        "--alphabet", default=defaults["alphabet"], help="protein, rna or letters"
    )
    parser.add_argument("--max-updates", type=int, default=defaults["max_updates"])
    parser.add_argument(
        "--target-pearson", type=float, default=dca.DEFAULT_TARGET_PEARSON
    )
    parser.add_argument(
        "--chains", type=int, default=defaults["chains"], help="persistent chains"
    )
    parser.add_argument("--sweeps", type=int, default=dca.DEFAULT_NUM_SWEEPS)
    parser.add_argument(
        "--lr", type=float, default=defaults["lr"], help="learning rate η"
    )
    parser.add_argument(
        "--check-every", type=int, default=25, help="updates between checks"
    )
    parser.add_argument("--top", type=int, default=10, help="contacts to print")
    parser.add_argument(
        "--fresh-samples",
        type=int,
        default=defaults["fresh_samples"],
        help="fresh samples to check",
    )
    parser.add_argument(
        "--fresh-sweeps", type=int, default=1000, help="sweeps per fresh sample"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=defaults["output"])
    return parser.parse_args(argv)


def plot_outputs(output, scores, data_moments, model_moments):
    figure, axis = plt.subplots(figsize=(4.5, 4))
    image = axis.imshow(np.asarray(scores), cmap="Greys")
    axis.set_title("contact scores (Frobenius norm, APC)")
    figure.colorbar(image, ax=axis)
    figure.tight_layout()
    figure.savefig(output / "contact_map.png", dpi=120)
    plt.close(figure)

    element = data_moments.element
    rows, cols = np.nonzero(element[:, None] < element[None, :])
    figure, axis = plt.subplots(figsize=(4, 4))
    x = np.asarray(data_moments.covariance)[rows, cols]
    y = np.asarray(model_moments.covariance)[rows, cols]
    axis.plot(x, y, ".", ms=1, alpha=0.3)
    limits = [min(x.min(), y.min()), max(x.max(), y.max())]
    axis.plot(limits, limits, "k--", lw=1)
    axis.set_xlabel("data C_ij(a, b)")
    axis.set_ylabel("model C_ij(a, b)")
    figure.tight_layout()
    figure.savefig(output / "correlations.png", dpi=120)
    plt.close(figure)


def main(argv=None, defaults=DEFAULTS, description=None) -> dict:
    args = parse_args(argv, defaults, description)
    args.output.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    alignment = read_alignment(args.alignment, args.alphabet)
    num_states = len(alignment.alphabet)
    weights = sequence_weights(alignment.sequences)
    count, length = alignment.sequences.shape
    print(
        f"{count} sequences × {length} positions, q = {num_states}, M_eff = {weights.sum():.2f}"
    )
    learner = dca.dca_learner(
        Potts(length, num_states),
        learning_rate=args.lr,
        num_chains=args.chains,
        num_sweeps=args.sweeps,
    )

    check_seconds = []

    def report(update, pearson, slope):
        elapsed = time.monotonic() - start
        check_seconds.append(elapsed)
        print(
            f"update {update}: pearson {pearson:.4f}, slope {slope:.4f} ({elapsed:.0f} s)"
        )

    result = dca.fit_dca(
        jax.random.key(args.seed),
        alignment.sequences,
        num_states,
        weights=weights,
        learner=learner,
        max_updates=args.max_updates,
        target_pearson=args.target_pearson,
        check_every=args.check_every,
        on_check=report,
    )
    seconds = time.monotonic() - start
    model, state = result.model, result.state
    print(f"training: {int(state.step)} updates in {seconds:.0f} s")
    fresh = dca.fresh_comparison(
        jax.random.fold_in(jax.random.key(args.seed), 1),
        model,
        state.params,
        result.monitor.data_moments,
        args.fresh_samples,
        num_sweeps=args.fresh_sweeps,
    )
    print(
        f"{args.fresh_samples} fresh samples after {args.fresh_sweeps} sweeps: "
        f"pearson {float(fresh.covariance_pearson):.4f}, "
        f"slope {float(fresh.covariance_slope):.4f}"
    )
    np.savez(
        args.output / "params.npz",
        fields=np.asarray(model.constrain(state.params)["fields"]),
        couplings=np.asarray(model.coupling_matrix(state.params)),
    )
    scores = dca.contact_scores(model.coupling_matrix(state.params))
    pairs = dca.top_contacts(scores, args.top)
    print("top contacts (1-based positions, |i - j| ≥ 4):")
    for i, j, score in pairs:
        print(f"{i + 1:5d} {j + 1:5d} {score:.4f}")
    lines = ["i\tj\tscore"] + [f"{i + 1}\t{j + 1}\t{s:.6f}" for i, j, s in pairs]
    (args.output / "contacts.tsv").write_text("\n".join(lines) + "\n")
    plot_outputs(
        args.output,
        scores,
        result.monitor.data_moments,
        moments(model, state.chains.position),
    )
    metrics = {
        "pearson": result.monitor.pearson[-1],
        "slope": result.monitor.slope[-1],
        "updates": int(state.step),
        "seconds": seconds,
        "num_chains": args.chains,
        "converged": result.converged,
        "fresh_pearson": float(fresh.covariance_pearson),
        "fresh_slope": float(fresh.covariance_slope),
        "fresh_samples": args.fresh_samples,
        "fresh_sweeps": args.fresh_sweeps,
        "learning_rate": args.lr,
        "sweeps": args.sweeps,
        "effective_sequences": float(weights.sum()),
        "history": {
            "seconds": check_seconds,
            "updates": result.monitor.updates,
            "pearson": result.monitor.pearson,
            "slope": result.monitor.slope,
        },
    }
    (args.output / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


if __name__ == "__main__":
    main()
