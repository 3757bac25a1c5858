"""Time to reach Pearson 0.95 on RF00379: numpyro_ebm against adabmDCA on the CPU.

Both programs fit a fully connected Potts model (bmDCA) to the Rfam RF00379
alignment (L = 136, q = 5) with the same settings: ``--chains`` persistent
chains, learning rate ``--lr``, ``--sweeps`` sweeps per update, stopping at
Pearson ``--target`` between the connected correlations of the data and of
the chains, sequence reweighting at 80 % identity, pseudocount 1/M_eff, plain
gradient steps (fields η, couplings η) and a start from the profile model
with chains drawn from it. Differences that remain, all from adabmDCA's
defaults:

* adabmDCA samples with Metropolis (one random site per step, shared by all
  chains, uniform proposals); numpyro_ebm with sequential local-field Gibbs.
* adabmDCA drops duplicate sequences before reweighting (3,646 of 3,827 kept,
  M_eff = 1447.04 instead of 1446.30).
* adabmDCA also estimates the log-likelihood (AIS) and the chains' effective
  sample size at every update.

adabmDCA runs as a separate process: ``--adabmdca`` is the path of its
console script, for example from ``pip install adabmDCA`` in a virtual
environment of its own. Without it, only numpyro_ebm runs.

The time per update is measured from the end of the first epoch to the
first check that reaches the target. adabmDCA's first epoch is one update,
timed by the ``Elapsed_s`` column of its log. numpyro_ebm's first epoch is
``--check-every`` updates and includes compilation. The training time is
that rate times the number of updates. numpyro_ebm checks the Pearson
correlation every ``--check-every`` updates, adabmDCA every update. The
times at which each program first reaches Pearson 0.5, 0.8, 0.85, 0.9 and
0.95 are compared too, so a run that stops at ``--adabmdca-timeout`` still
gives ratios. Start-up (reading, reweighting, compilation) is reported
separately.

With ``--equilibrium params.npz`` the script instead follows
``--fresh-samples`` fresh chains of a trained model from random sequences
and reports the Pearson correlation, slope and mean energy after 100 to
3,200 sweeps.

The numpyro_ebm side is ``examples/dca_rna.py`` run with these settings, so
its outputs (contact map, correlations, ``metrics.json``) are written under
``--output``/numpyro_ebm; after training it checks the model on
``--fresh-samples`` new chains run for ``--fresh-sweeps`` sweeps from random
sequences.

Writes ``metrics.json`` to ``--output``. Run from the repository root::

    python benchmarks/dca_rf00379.py --adabmdca /path/to/venv/bin/adabmDCA
"""

import argparse
import json
import os
import platform
import runpy
import subprocess
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import numpyro_ebm
from numpyro_ebm import dca
from numpyro_ebm.data.fasta import read_alignment, sequence_weights
from numpyro_ebm.estimators import compare_moments, moments
from numpyro_ebm.kernels.local_field import local_field_gibbs
from numpyro_ebm.models import Potts

# Checkpoints (sweeps) of the equilibrium table, advanced in blocks of sweeps.
EQUILIBRIUM_SWEEPS = (100, 200, 400, 800, 1600, 3200)
EQUILIBRIUM_BLOCK = 100
# Pearson levels at which the times of the two programs are compared.
LEVELS = (0.5, 0.8, 0.85, 0.9, 0.95)
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dca_rna.py"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--alignment",
        type=Path,
        default=Path(os.environ.get("NUMPYRO_EBM_DATA", SHARED_DATA))
        / "msa"
        / "RF00379.fasta",
    )

    parser.add_argument("--chains", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=dca.DEFAULT_LEARNING_RATE)
    parser.add_argument("--sweeps", type=int, default=dca.DEFAULT_NUM_SWEEPS)
    parser.add_argument("--target", type=float, default=dca.DEFAULT_TARGET_PEARSON)
    parser.add_argument("--max-updates", type=int, default=5000)
    parser.add_argument("--check-every", type=int, default=10)
    parser.add_argument("--fresh-samples", type=int, default=10_000)
    parser.add_argument("--fresh-sweeps", type=int, default=1000)

    parser.add_argument(
        "--adabmdca", type=Path, default=None, help="adabmDCA console script"
    )
    parser.add_argument(
        "--adabmdca-timeout", type=int, default=3600, help="seconds for adabmDCA"
    )
    parser.add_argument(
        "--equilibrium",
        type=Path,
        default=None,
        help="params.npz of a trained model: only run fresh chains from random "
        "sequences and report Pearson and slope against the number of sweeps",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path("out/bench_dca"))
    return parser.parse_args(argv)


def run_numpyro_ebm(args) -> dict:
    """Run ``examples/dca_rna.py`` with the benchmark's settings; return its timings."""
    example = runpy.run_path(str(EXAMPLE))
    argv = [
        "--alignment", str(args.alignment), "--chains", str(args.chains),
        "--lr", str(args.lr), "--sweeps", str(args.sweeps),
        "--target-pearson", str(args.target), "--max-updates", str(args.max_updates),
        "--check-every", str(args.check_every),
        "--fresh-samples", str(args.fresh_samples),
        "--fresh-sweeps", str(args.fresh_sweeps), "--seed", str(args.seed),
        "--output", str(args.output / "numpyro_ebm"),
    ]  # fmt: skip
    metrics = example["main"](argv)
    history = metrics["history"]
    updates, seconds = history["updates"], history["seconds"]
    # The first check comes after the first epoch, which includes compilation;
    # the rate is measured from there.
    per_update = (seconds[-1] - seconds[0]) / max(1, updates[-1] - updates[0])
    startup = seconds[0] - per_update * updates[0]
    return {
        "converged": metrics["converged"],
        "updates": metrics["updates"],
        "pearson": metrics["pearson"],
        "slope": metrics["slope"],
        "training_seconds": per_update * metrics["updates"],
        "seconds_per_update": per_update,
        "startup_seconds": startup,
        "effective_sequences": metrics["effective_sequences"],
        "fresh_pearson": metrics["fresh_pearson"],
        "fresh_slope": metrics["fresh_slope"],
        # (update, seconds from the first update, pearson, slope)
        "history": [
            (u, t - startup, p, s)
            for u, t, p, s in zip(
                updates, seconds, history["pearson"], history["slope"], strict=True
            )
        ],
    }


def parse_adabmdca_log(path: Path) -> list[dict]:
    """Return the rows of the table in an adabmDCA training log, as dicts."""
    rows, header = [], None
    for line in path.read_text().splitlines():
        fields = line.split()
        if fields[:2] == ["Step", "Stage"]:
            header = fields
        elif header and len(fields) == len(header) and fields[0].isdigit():
            rows.append(dict(zip(header, fields, strict=True)))
    return rows


def run_adabmdca(args) -> dict:
    folder = args.output / "adabmdca"
    folder.mkdir(parents=True, exist_ok=True)
    command = [
        str(args.adabmdca), "train", "-d", str(args.alignment), "-o", str(folder),
        "-m", "bmDCA", "--alphabet", "rna", "--device", "cpu",
        "--dtype", "float32", "--nchains", str(args.chains), "--lr", str(args.lr),
        "--nsweeps", str(args.sweeps), "--target", str(args.target),
        "--nepochs", str(args.max_updates), "--seed", str(args.seed),
        "--no-progress",
    ]  # fmt: skip

    start = time.perf_counter()
    try:
        subprocess.run(
            command,
            check=False,
            timeout=args.adabmdca_timeout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    wall = time.perf_counter() - start

    rows = parse_adabmdca_log(folder / "adabmDCA.log")
    if not rows:
        return {"error": "no training rows in the log", "command": command}
    reached = [row for row in rows if float(row["Pearson"]) >= args.target]
    last = reached[0] if reached else rows[-1]
    updates = int(last["Step"])
    elapsed = float(last["Elapsed_s"])
    per_update = (elapsed - float(rows[0]["Elapsed_s"])) / max(1, updates - 1)
    return {
        "converged": bool(reached),
        "timed_out": timed_out,
        "updates": updates,
        "pearson": float(last["Pearson"]),
        "slope": float(last["Slope"]),
        "training_seconds": per_update * updates,
        "seconds_per_update": per_update,
        "startup_seconds": wall - elapsed if not timed_out else None,
        "command": " ".join(command),
        "history": [
            (
                int(row["Step"]),
                float(row["Elapsed_s"]),
                float(row["Pearson"]),
                float(row["Slope"]),
            )
            for row in rows
        ],
    }


def first_reaching(history, level):
    """Return (update, seconds) of the first history entry with Pearson ≥ level."""
    for update, seconds, pearson, _ in history:
        if pearson >= level:
            return update, seconds
    return None


def equilibrium_table(args) -> dict:
    """Follow fresh chains of a trained model; compare them with the data at checkpoints.

    If the Pearson correlation or the slope still drift after the chains'
    energy has settled, the persistent chains of training (a few sweeps per
    update) did not represent the model's equilibrium.
    """
    alignment = read_alignment(args.alignment, "rna")
    weights = sequence_weights(alignment.sequences)
    single, pair = dca.frequencies(
        alignment.sequences, 5, weights, dca.default_pseudocount(weights)
    )
    data = dca.frequency_moments(single, pair)
    saved = np.load(args.equilibrium)
    model = Potts(alignment.sequences.shape[1], 5)
    # The saved couplings are the symmetric J, and (J + Jᵀ)/2 = J.
    params = {
        "fields": jnp.asarray(saved["fields"]),
        "couplings": jnp.asarray(saved["couplings"]),
    }
    kernel = local_field_gibbs(model)
    count = args.fresh_samples
    key_start, key_init, key = jax.random.split(jax.random.key(args.seed), 3)
    start = jax.random.randint(key_start, (count, model.num_sites), 0, 5, jnp.int32)
    chains = jax.vmap(kernel.init, (0, 0, None))(
        jax.random.split(key_init, count), {"x": start}, params
    )

    @jax.jit
    def advance(chains, key):
        def sweep(chains, key):
            keys = jax.random.split(key, count)
            return jax.vmap(kernel.step, (0, 0, None))(keys, chains, params)[0], None

        return jax.lax.scan(sweep, chains, jax.random.split(key, EQUILIBRIUM_BLOCK))[0]

    table, done = [], 0
    for target in EQUILIBRIUM_SWEEPS:
        while done < target:
            key, step_key = jax.random.split(key)
            chains = advance(chains, step_key)
            done += EQUILIBRIUM_BLOCK
        comparison = compare_moments(data, moments(model, chains.position))
        energy = float(model.energy(params, chains.position).mean())
        row = (
            done,
            float(comparison.covariance_pearson),
            float(comparison.covariance_slope),
            energy,
        )
        table.append(row)
        print(
            f"{done} sweeps: pearson {row[1]:.4f}, slope {row[2]:.4f}, mean energy {energy:.3f}",
            flush=True,
        )
    return {"chains": count, "sweeps_pearson_slope_energy": table}


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    if args.equilibrium is not None:
        results = equilibrium_table(args)
        path = args.output / "equilibrium.json"
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {path}")
        return results
    ours = run_numpyro_ebm(args)
    print(
        f"numpyro_ebm: pearson {ours['pearson']:.4f} after {ours['updates']} updates, "
        f"{ours['training_seconds']:.0f} s ({ours['seconds_per_update']:.3f} s/update); "
        f"fresh samples: pearson {ours['fresh_pearson']:.4f}"
    )
    results = {"numpyro_ebm": ours}

    if args.adabmdca is not None:
        theirs = run_adabmdca(args)
        results["adabmdca"] = theirs
        if "error" not in theirs:
            print(
                f"adabmDCA: pearson {theirs['pearson']:.4f} after {theirs['updates']} "
                f"updates, {theirs['training_seconds']:.0f} s "
                f"({theirs['seconds_per_update']:.3f} s/update)"
            )
            results["time_ratio"] = (
                theirs["training_seconds"] / ours["training_seconds"]
            )
            results["per_update_ratio"] = (
                theirs["seconds_per_update"] / ours["seconds_per_update"]
            )
            results["levels"] = {}
            for level in LEVELS:
                mine = first_reaching(ours["history"], level)
                other = first_reaching(theirs["history"], level)
                results["levels"][str(level)] = {
                    "numpyro_ebm": mine,
                    "adabmdca": other,
                    "time_ratio": other[1] / mine[1] if mine and other else None,
                }
                print(f"Pearson {level}: numpyro_ebm {mine}, adabmDCA {other}")

    results["settings"] = {
        key: str(value) if isinstance(value, Path) else value
        for key, value in vars(args).items()
    }
    results["machine"] = {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "numpyro_ebm": numpyro_ebm.__version__,
        "numpy": np.__version__,
    }
    path = args.output / "metrics.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
