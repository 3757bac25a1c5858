"""Command-line interface: ``numpyro-ebm dca train|sample|contacts|energies``.

``dca train`` writes to its output folder:

- ``config.json``: the options of the run (alphabet, chains, sweeps, …);
- ``state.npz``: every array of the learner state (parameters, chains,
  optimiser state, random key as ``jax.random.key_data``, update count), in
  the order of ``jax.tree.flatten``, so training resumes exactly;
- ``params.npz``: the fields h (L, q) and symmetric couplings J (L, q, L, q);
- ``history.tsv``: update, Pearson correlation and slope of the connected
  correlations at each check;
- ``weights.txt``: the sequence weights.

Running ``dca train`` again with the same output folder continues from
``state.npz`` with the stored options (alignment, alphabet, chains, sweeps,
step, seed, ``--check-every``, …), whatever is given on the command line; only
``--max-updates`` and ``--target-pearson`` may change, and a run already at
``--max-updates`` stops with a message. ``--restart`` starts over. Ctrl-C
saves the state of the last completed update before exiting. Bad input
files and options end with a one-line error and exit status 2.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from numpyro_ebm import dca
from numpyro_ebm.data.fasta import (
    ALPHABETS,
    DEFAULT_IDENTITY_THRESHOLD,
    UNKNOWN_POLICIES,
    decode_sequences,
    read_alignment,
    sequence_weights,
    write_fasta,
)
from numpyro_ebm.learning.state import LearnerState
from numpyro_ebm.models.pairwise import Potts

CONFIG_FILE = "config.json"
STATE_FILE = "state.npz"
PARAMS_FILE = "params.npz"
HISTORY_FILE = "history.tsv"
# Options that define the model and the chains; a resumed run keeps them.
FIXED_OPTIONS = (
    "alignment",
    "alphabet",
    "unknown",
    "keep_inserts",
    "identity",
    "pseudocount",
    "chains",
    "sweeps",
    "lr",
    "l2",
    "seed",
    "check_every",
)


def _positive_int(text: str) -> int:
    """Parse a positive integer option value."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def _add_train(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="fit a Potts model to an aligned FASTA file (bmDCA)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("alignment", type=Path, help="aligned FASTA file")
    parser.add_argument("--output", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--alphabet",
        default="protein",
        help=f"one of {sorted(ALPHABETS)} or the letters of the alphabet, gap first",
    )
    parser.add_argument(
        "--unknown",
        choices=UNKNOWN_POLICIES,
        default="reject",
        help="letters outside the alphabet: read as gaps, or stop with an error",
    )
    parser.add_argument(
        "--keep-inserts",
        action="store_true",
        help="keep lower-case and '.' insert columns instead of dropping them",
    )
    parser.add_argument(
        "--identity",
        type=float,
        default=DEFAULT_IDENTITY_THRESHOLD,
        help="reweighting identity threshold θ (neighbours have identity ≥ θ)",
    )
    parser.add_argument(
        "--pseudocount",
        type=float,
        default=None,
        help="pseudocount λ (default 1/M_eff)",
    )
    parser.add_argument(
        "--target-pearson",
        type=float,
        default=None,
        help=f"stop at this Pearson correlation (default {dca.DEFAULT_TARGET_PEARSON})",
    )
    parser.add_argument(
        "--max-updates",
        type=int,
        default=None,
        help="maximum total number of updates (default 2000)",
    )
    parser.add_argument(
        "--chains",
        type=_positive_int,
        default=dca.DEFAULT_NUM_CHAINS,
        help="persistent chains",
    )
    parser.add_argument(
        "--sweeps",
        type=_positive_int,
        default=dca.DEFAULT_NUM_SWEEPS,
        help="sweeps per update",
    )
    parser.add_argument(
        "--lr", type=float, default=dca.DEFAULT_LEARNING_RATE, help="learning rate η"
    )
    parser.add_argument("--l2", type=float, default=0.0, help="L2 penalty coefficient")
    parser.add_argument(
        "--check-every",
        type=_positive_int,
        default=10,
        help="updates between Pearson checks",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--restart",
        action="store_true",
        help="start afresh even if the output folder contains a saved state",
    )
    parser.set_defaults(handler=train)


def _add_others(subparsers) -> None:
    sample = subparsers.add_parser(
        "sample",
        help="sample sequences from a trained model",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sample.add_argument("folder", type=Path, help="output folder of `dca train`")
    sample.add_argument(
        "--num", type=_positive_int, required=True, help="number of sequences"
    )
    sample.add_argument(
        "--sweeps", type=_positive_int, default=1000, help="Gibbs sweeps per chain"
    )
    sample.add_argument("--seed", type=int, default=0, help="random seed")
    sample.set_defaults(handler=sample_command)

    contacts = subparsers.add_parser(
        "contacts",
        help="score residue pairs (Frobenius norm with APC, gap excluded)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    contacts.add_argument("folder", type=Path, help="output folder of `dca train`")
    contacts.add_argument(
        "--top", type=_positive_int, default=20, help="pairs to print"
    )
    contacts.add_argument(
        "--min-separation",
        type=int,
        default=dca.DEFAULT_MIN_SEPARATION,
        help="minimum |i − j| of printed pairs",
    )
    contacts.set_defaults(handler=contacts_command)

    energies = subparsers.add_parser(
        "energies",
        help="compute energies of sequences (and single mutants of the first)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    energies.add_argument("folder", type=Path, help="output folder of `dca train`")
    energies.add_argument("sequences", type=Path, help="aligned FASTA file")
    energies.add_argument(
        "--mutants",
        action="store_true",
        help="also write ΔE of every single mutant of the first sequence",
    )
    energies.set_defaults(handler=energies_command)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of ``numpyro-ebm``."""
    parser = argparse.ArgumentParser(
        prog="numpyro-ebm", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    dca_parser = commands.add_parser("dca", help="direct coupling analysis (bmDCA)")
    dca_commands = dca_parser.add_subparsers(dest="dca_command", required=True)
    _add_train(dca_commands)
    _add_others(dca_commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``numpyro-ebm`` with ``argv`` (``sys.argv[1:]`` by default); return 0.

    Examples
    --------
    >>> try:
    ...     main(["--help"])
    ... except SystemExit as exit:
    ...     print(exit.code)  # doctest: +ELLIPSIS
    usage: numpyro-ebm ...
    0
    """
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, OSError) as error:
        # Bad input files and options: one line, not a traceback.
        print(f"numpyro-ebm: error: {error}", file=sys.stderr)
        return 2


# -- train ---------------------------------------------------------------------


def _resolve_config(args) -> dict:
    """Merge the stored options of a resumed run with the command-line ones."""
    config = {
        "alignment": str(args.alignment.resolve()),
        "alphabet": args.alphabet,
        "unknown": args.unknown,
        "keep_inserts": args.keep_inserts,
        "identity": args.identity,
        "pseudocount": args.pseudocount,
        "chains": args.chains,
        "sweeps": args.sweeps,
        "lr": args.lr,
        "l2": args.l2,
        "seed": args.seed,
        "check_every": args.check_every,
        "max_updates": 2000 if args.max_updates is None else args.max_updates,
        "target_pearson": (
            dca.DEFAULT_TARGET_PEARSON
            if args.target_pearson is None
            else args.target_pearson
        ),
    }
    stored_path = args.output / CONFIG_FILE
    if args.restart or not (args.output / STATE_FILE).exists():
        return config
    stored = json.loads(stored_path.read_text())
    for name in FIXED_OPTIONS:
        config[name] = stored[name]
    for name, value in (
        ("max_updates", args.max_updates),
        ("target_pearson", args.target_pearson),
    ):
        config[name] = stored[name] if value is None else value
    return config


def train(args) -> int:
    """Train (or resume) a bmDCA model and write the output folder."""
    args.output.mkdir(parents=True, exist_ok=True)
    config = _resolve_config(args)
    alignment = read_alignment(
        config["alignment"],
        config["alphabet"],
        unknown=config["unknown"],
        drop_inserts=not config["keep_inserts"],
    )
    num_states = len(alignment.alphabet)
    weights = sequence_weights(alignment.sequences, config["identity"])
    count, length = alignment.sequences.shape
    print(
        f"alignment: {count} sequences × {length} positions, q = {num_states}, "
        f"M_eff = {weights.sum():.2f}"
    )
    np.savetxt(args.output / "weights.txt", weights)
    model = Potts(length, num_states)
    learner = dca.dca_learner(
        model,
        learning_rate=config["lr"],
        num_chains=config["chains"],
        num_sweeps=config["sweeps"],
        l2=config["l2"],
    )
    resumed = not args.restart and (args.output / STATE_FILE).exists()
    init_state = load_state(args.output / STATE_FILE, learner) if resumed else None
    history = _read_history(args.output / HISTORY_FILE) if resumed else ([], [], [])
    if resumed:
        print(f"resuming from update {int(init_state.step)} in {args.output}")
    (args.output / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")

    start = time.monotonic()

    def report(update, pearson, slope):
        elapsed = time.monotonic() - start
        print(
            f"update {update}: pearson {pearson:.4f}, slope {slope:.4f} ({elapsed:.0f} s)"
        )

    def checkpoint(epoch, state):
        if int(state.step) % config["check_every"] == 0:
            _save_all(args.output, model, state, history, monitor_lists())
        return False

    monitor = None

    def monitor_lists():
        if monitor is None:
            return [], [], []
        return monitor.updates, monitor.pearson, monitor.slope

    if (
        init_state is not None
        and history[1]
        and history[1][-1] >= config["target_pearson"]
    ):
        print(
            f"already reached Pearson {history[1][-1]:.4f} ≥ {config['target_pearson']}"
        )
        return 0
    if init_state is not None and int(init_state.step) >= config["max_updates"]:
        print(
            f"already at update {int(init_state.step)}, not below --max-updates "
            f"{config['max_updates']}; raise --max-updates to continue"
        )
        return 0
    pseudocount = config["pseudocount"]
    if pseudocount is None:
        pseudocount = dca.default_pseudocount(weights)
    single, pair = dca.frequencies(
        alignment.sequences, num_states, weights, pseudocount
    )
    monitor = dca.PearsonMonitor(
        model,
        dca.frequency_moments(single, pair),
        target=config["target_pearson"],
        check_every=config["check_every"],
    )
    try:
        result = dca.fit_dca(
            jax.random.key(config["seed"]),
            alignment.sequences,
            num_states,
            weights=weights,
            pseudocount=pseudocount,
            learner=learner,
            max_updates=config["max_updates"],
            init_state=init_state,
            monitor=monitor,
            on_check=report,
            callbacks=[checkpoint],
        )
    except KeyboardInterrupt as error:
        state = getattr(error, "training_state", None)
        if state is not None:
            _save_all(args.output, model, state, history, monitor_lists())
            print(f"interrupted: saved the state after update {int(state.step)}")
        return 130
    _save_all(args.output, model, result.state, history, monitor_lists())
    status = "reached" if result.converged else "did not reach"
    print(
        f"{status} Pearson {config['target_pearson']} after {int(result.state.step)} "
        f"updates (last {result.monitor.pearson[-1]:.4f}); wrote {args.output}"
    )
    return 0


def _save_all(folder: Path, model: Potts, state: LearnerState, old, new) -> None:
    save_state(folder / STATE_FILE, state)
    np.savez(
        folder / PARAMS_FILE,
        fields=np.asarray(model.constrain(state.params)["fields"]),
        couplings=np.asarray(model.coupling_matrix(state.params)),
    )
    rows = list(zip(*old, strict=True)) + list(zip(*new, strict=True))
    lines = ["update\tpearson\tslope"] + [f"{u}\t{p:.6f}\t{s:.6f}" for u, p, s in rows]
    (folder / HISTORY_FILE).write_text("\n".join(lines) + "\n")


def _read_history(path: Path) -> tuple[list, list, list]:
    if not path.exists():
        return [], [], []
    table = np.loadtxt(path, skiprows=1, ndmin=2)
    return table[:, 0].astype(int).tolist(), table[:, 1].tolist(), table[:, 2].tolist()


def save_state(path: Path, state: LearnerState) -> None:
    """Save every array of a learner state to ``path`` (``.npz``), keys as key data.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> learner = dca.dca_learner(Potts(3, 2), num_chains=2)
    >>> state = learner.init(jax.random.key(0))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "state.npz"
    >>> save_state(path, state)
    >>> restored = load_state(path, learner)
    >>> bool(jnp.all(restored.chains.position["x"] == state.chains.position["x"]))
    True
    """
    leaves = jax.tree.leaves(state)
    arrays = {}
    for index, leaf in enumerate(leaves):
        if jnp.issubdtype(jnp.asarray(leaf).dtype, jax.dtypes.prng_key):
            arrays[f"key_{index:04d}"] = np.asarray(jax.random.key_data(leaf))
        else:
            arrays[f"leaf_{index:04d}"] = np.asarray(leaf)
    np.savez(path, **arrays)


def load_state(path: Path, learner) -> LearnerState:
    """Load a state saved by :func:`save_state` for the same learner configuration.

    The tree structure comes from ``learner.init``; a saved state with other
    shapes (another number of chains or sites) raises ``ValueError``.
    """
    template = learner.init(jax.random.key(0))
    leaves, treedef = jax.tree.flatten(template)
    with np.load(path) as stored:
        names = sorted(stored.files, key=lambda name: int(name.split("_")[1]))
        if len(names) != len(leaves):
            raise ValueError(
                f"{path} contains {len(names)} arrays but the learner state has "
                f"{len(leaves)}; resume with the options stored in {CONFIG_FILE}."
            )
        restored = []
        for name, leaf in zip(names, leaves, strict=True):
            value = stored[name]
            if name.startswith("key_"):
                restored.append(jax.random.wrap_key_data(jnp.asarray(value)))
                continue
            if value.shape != jnp.shape(leaf):
                raise ValueError(
                    f"{path}: array {name} has shape {value.shape}, but the learner "
                    f"expects {jnp.shape(leaf)}; resume with the stored options."
                )
            restored.append(jnp.asarray(value, dtype=jnp.asarray(leaf).dtype))
    return jax.tree.unflatten(treedef, restored)


# -- sample, contacts, energies ------------------------------------------------------


def _load_model(folder: Path) -> tuple[Potts, dict, dict]:
    config_path = folder / CONFIG_FILE
    if not config_path.exists() or not (folder / PARAMS_FILE).exists():
        raise SystemExit(
            f"error: {folder} has no {CONFIG_FILE} and {PARAMS_FILE}; run "
            "`numpyro-ebm dca train ALIGNMENT --output FOLDER` first."
        )
    config = json.loads(config_path.read_text())
    with np.load(folder / PARAMS_FILE) as stored:
        params = {
            "fields": jnp.asarray(stored["fields"]),
            "couplings": jnp.asarray(stored["couplings"]),
        }
    length, num_states = params["fields"].shape
    return Potts(length, num_states), params, config


def sample_command(args) -> int:
    """Sample sequences into ``FOLDER/samples.fasta``."""
    model, params, config = _load_model(args.folder)
    from numpyro_ebm.data.fasta import resolve_alphabet

    alphabet = resolve_alphabet(config["alphabet"])
    print(f"sampling {args.num} sequences with {args.sweeps} sweeps each")
    states = dca.sample_sequences(
        jax.random.key(args.seed), model, params, args.num, num_sweeps=args.sweeps
    )
    energies = dca.sequence_energies(model, params, np.asarray(states))
    headers = [f"sample_{n + 1} energy={float(e):.4f}" for n, e in enumerate(energies)]
    path = args.folder / "samples.fasta"
    write_fasta(path, headers, decode_sequences(np.asarray(states), alphabet))
    print(f"wrote {path}")
    return 0


def contacts_command(args) -> int:
    """Write contact scores to ``FOLDER/contact_scores.npy`` and ``FOLDER/contacts.tsv``."""
    model, params, _ = _load_model(args.folder)
    scores = np.asarray(dca.contact_scores(params["couplings"]))
    np.save(args.folder / "contact_scores.npy", scores)
    pairs = dca.top_contacts(scores, scores.shape[0] ** 2, min_separation=1)
    lines = ["i\tj\tscore"] + [f"{i + 1}\t{j + 1}\t{s:.6f}" for i, j, s in pairs]
    (args.folder / "contacts.tsv").write_text("\n".join(lines) + "\n")
    print(
        f"top {args.top} pairs with |i - j| ≥ {args.min_separation} (1-based positions):"
    )
    for i, j, score in dca.top_contacts(
        scores, args.top, min_separation=args.min_separation
    ):
        print(f"{i + 1:5d} {j + 1:5d} {score:.4f}")
    return 0


def energies_command(args) -> int:
    """Write the energies of the sequences in a FASTA file to ``FOLDER/energies.tsv``."""
    model, params, config = _load_model(args.folder)
    alignment = read_alignment(
        args.sequences,
        config["alphabet"],
        unknown=config["unknown"],
        drop_inserts=not config["keep_inserts"],
    )
    if alignment.sequences.shape[1] != model.num_sites:
        raise SystemExit(
            f"error: {args.sequences} has {alignment.sequences.shape[1]} aligned "
            f"positions but the model has {model.num_sites}; align the sequences "
            "to the training alignment."
        )
    energies = np.asarray(dca.sequence_energies(model, params, alignment.sequences))
    lines = ["header\tenergy"] + [
        f"{name}\t{value:.6f}"
        for name, value in zip(alignment.headers, energies, strict=True)
    ]
    (args.folder / "energies.tsv").write_text("\n".join(lines) + "\n")
    print(f"wrote {len(energies)} energies to {args.folder / 'energies.tsv'}")
    if args.mutants:
        delta = dca.single_mutant_energies(model, params, alignment.sequences[0])
        path = args.folder / "single_mutants.txt"
        header = (
            f"ΔE of single mutants of {alignment.headers[0]}: rows are positions, "
            f"columns are the states {alignment.alphabet}"
        )
        np.savetxt(path, np.asarray(delta), fmt="%.6f", header=header)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
