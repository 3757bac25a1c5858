"""Spin updates per second of checkerboard Ising sampling: numpyro_ebm, NumPy, NumPyro.

Every method samples the zero-field Ising model (J = 1) on an L×L torus at
β = β_c = ln(1 + √2) / 2, with ``--chains`` independent chains, for each L in
``--sizes``. The throughput does not depend on β for the vectorised methods.

* numpyro_ebm: ``checkerboard_heat_bath`` (and ``checkerboard_metropolis``)
  through the public API: the pure ``init``/``step`` pair, ``jax.vmap`` over
  the chains and one jitted ``lax.scan`` of sweeps, as the learner runs them.
* NumPy: a straightforward checkerboard heat bath vectorised over the lattice
  and the chains with ``np.roll``, float32 spins, one
  ``numpy.random.default_rng().random`` array per sweep and precomputed colour
  masks: the same algorithm and layout as numpyro_ebm's.
* NumPyro's ``DiscreteHMCGibbs(HMC(model))`` on the same model written with
  Bernoulli sites (s = 2b − 1) and a ``numpyro.factor``. One of its steps is a
  sweep of single-site Gibbs updates in random order, each evaluating the whole
  model, so a spin update costs O(N). It is driven through its own ``init`` and
  ``sample`` (the ``MCMCKernel`` interface) in one jitted ``fori_loop``, vmapped
  over chains — faster than ``MCMC.run``, which adds its own overhead. Because
  it is so slow, it runs ``--dhmcg-sweeps`` sweeps, and only for chain counts
  whose estimated time fits ``--dhmcg-budget`` seconds; for the others the
  spin-update rate measured with the largest chain count that fitted at the
  same L is reported, marked as extrapolated.

Then, at L = ``--variant-size`` with ``--variant-chains`` chains, variants of
the numpyro_ebm heat bath that sample the same distribution are timed against
the shipped kernel, interleaved over the repeats: local fields from
``jnp.roll`` instead of a wrap-padded copy, a separate uniform array per
colour instead of one per sweep, a compact layout that stores each colour as
an (L, L/2) array, and the shipped kernel fed ``rbg`` or ``unsafe_rbg`` keys
instead of the default threefry ones.

Compilation is excluded: each jitted function is compiled ahead of time
(``jit(...).lower(...).compile()``) before it is timed. Each measurement is
repeated ``--repeats`` times (DiscreteHMCGibbs: once) and the median is
reported. A spin update is one site visited once: a sweep of an L×L lattice
is L² spin updates per chain.

Writes ``metrics.json`` to ``--output``. Run from the repository root::

    python benchmarks/ising_checkerboard.py

and ``python benchmarks/ising_checkerboard.py --help`` for the options.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import HMC, DiscreteHMCGibbs

import numpyro_ebm
from numpyro_ebm.kernels.base import step_chains
from numpyro_ebm.kernels.checkerboard import (
    CheckerboardState,
    checkerboard_heat_bath,
    checkerboard_metropolis,
    colour_masks,
)
from numpyro_ebm.models.ising import (
    CRITICAL_INVERSE_TEMPERATURE,
    IsingLattice,
    bond_sum,
)

BETA = CRITICAL_INVERSE_TEMPERATURE


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[32, 64, 128], help="lattice sides L"
    )
    parser.add_argument(
        "--chains", type=int, nargs="+", default=[1, 16, 64], help="chain counts"
    )
    parser.add_argument(
        "--updates",
        type=float,
        default=1e8,
        help="spin updates per timed numpyro_ebm run (sweeps = updates / (L² chains), "
        "at least 10); NumPy runs a tenth of them",
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed repeats (median reported)"
    )
    parser.add_argument(
        "--dhmcg-sweeps", type=int, default=1, help="sweeps per DiscreteHMCGibbs run"
    )
    parser.add_argument(
        "--dhmcg-budget",
        type=float,
        default=4.0,
        help="longest estimated DiscreteHMCGibbs run, in seconds, that is measured",
    )
    parser.add_argument(
        "--no-dhmcg", action="store_true", help="skip NumPyro's DiscreteHMCGibbs"
    )
    parser.add_argument(
        "--no-variants",
        action="store_true",
        help="skip the comparison of layouts and random-number generators",
    )
    parser.add_argument(
        "--variant-size", type=int, default=64, help="L of the variant comparison"
    )
    parser.add_argument(
        "--variant-chains",
        type=int,
        default=16,
        help="chains of the variant comparison",
    )
    parser.add_argument(
        "--chain-batch-size",
        type=int,
        default=8,
        help="chains advanced together by numpyro_ebm (step_chains); 0 vmaps all",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("out/benchmarks/ising_checkerboard"),
        help="folder for metrics.json",
    )
    args = parser.parse_args(argv)
    if any(size < 2 or size % 2 for size in args.sizes):
        parser.error("--sizes must be even and at least 2")
    if any(count < 1 for count in args.chains) or args.repeats < 1:
        parser.error("--chains and --repeats must be positive")
    return args


def timed(fn, *args, repeats):
    """Median wall and CPU seconds of ``fn(*args)`` over ``repeats`` calls."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return float(np.median(walls)), float(np.median(cpus)), walls


def rates(updates, wall, cpu, walls, sweeps):
    """Express a measurement as spin updates per wall-clock and per CPU second."""
    return {
        "updates_per_second": updates / wall,
        "updates_per_cpu_second": updates / cpu,
        "seconds": wall,
        "cpu_seconds": cpu,
        "all_seconds": walls,
        "sweeps": sweeps,
    }


# -- numpyro_ebm -----------------------------------------------------------------


def time_ours(make_kernel, size, chains, num_sweeps, seed, repeats, chain_batch_size):
    model = IsingLattice((size, size))
    params = model.init_params()
    kernel = make_kernel(model, BETA)
    key_spins, key_init, key_run = jax.random.split(jax.random.key(seed), 3)
    spins = jax.random.rademacher(key_spins, (chains, size, size), dtype=jnp.float32)
    states = jax.vmap(kernel.init, (0, 0, None))(
        jax.random.split(key_init, chains), {"s": spins}, params
    )

    def run(rng_key, states, params):
        def sweep(states, key):
            keys = jax.random.split(key, chains)
            batch = None if chain_batch_size is None else min(chain_batch_size, chains)
            states, _ = step_chains(kernel, keys, states, params, batch)
            return states, None

        keys = jax.random.split(rng_key, num_sweeps)
        return jax.lax.scan(sweep, states, keys)[0].position["s"]

    compiled = jax.jit(run).lower(key_run, states, params).compile()
    return timed(compiled, key_run, states, params, repeats=repeats)


# -- NumPy -----------------------------------------------------------------------


def numpy_heat_bath(rng, spins, beta, num_sweeps, coupling=1.0, field=0.0):
    """Checkerboard heat-bath sweeps of float32 spins of shape (chains, L, L)."""
    parity = np.indices(spins.shape[1:]).sum(axis=0) % 2
    masks = (parity == 0, parity == 1)
    two_beta = np.float32(2 * beta)
    for _ in range(num_sweeps):
        uniforms = rng.random(spins.shape, dtype=np.float32)
        for mask in masks:
            neighbours = (
                np.roll(spins, 1, -1)
                + np.roll(spins, -1, -1)
                + np.roll(spins, 1, -2)
                + np.roll(spins, -1, -2)
            )
            field_i = np.float32(coupling) * neighbours + np.float32(field)
            probs = 1 / (1 + np.exp(-two_beta * field_i))
            new = np.where(uniforms < probs, np.float32(1), np.float32(-1))
            spins = np.where(mask, new, spins)
    return spins


def time_numpy(size, chains, num_sweeps, seed, repeats):
    rng = np.random.default_rng(seed)
    spins = rng.choice(np.array([-1.0, 1.0], np.float32), size=(chains, size, size))
    numpy_heat_bath(rng, spins, BETA, 1)  # warm the caches
    return timed(numpy_heat_bath, rng, spins, BETA, num_sweeps, repeats=repeats)


# -- NumPyro's DiscreteHMCGibbs --------------------------------------------------


def bernoulli_ising_model(size, beta):
    """Ising model with Bernoulli(1/2) sites b and spins s = 2b − 1 (a flat prior)."""
    b = numpyro.sample("b", dist.Bernoulli(probs=jnp.full((size, size), 0.5)))
    numpyro.factor("neg_energy", beta * bond_sum(2.0 * b - 1.0, 2))


def compile_dhmcg(size, chains, num_sweeps, seed):
    kernel = DiscreteHMCGibbs(HMC(bernoulli_ising_model))
    model_args = (size, BETA)
    keys = jax.random.split(jax.random.key(seed), chains)
    states = [kernel.init(key, 0, None, model_args, {}) for key in keys]
    state = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)
    step = jax.vmap(lambda s: kernel.sample(s, model_args, {}))

    def run(state):
        return jax.lax.fori_loop(0, num_sweeps, lambda i, s: step(s), state).z["b"]

    return jax.jit(run).lower(state).compile(), state


def time_dhmcg(size, chains, num_sweeps, seed):
    compiled, state = compile_dhmcg(size, chains, num_sweeps, seed)
    return timed(compiled, state, repeats=1)


def measure_dhmcg(args, size, results):
    """Measure DiscreteHMCGibbs at each chain count that fits the time budget."""
    # Spin updates per second at the largest chain count measured so far.
    rate = cpu_rate = None
    for chains in sorted(args.chains):
        updates = size * size * chains * args.dhmcg_sweeps
        if rate is None or updates / rate <= args.dhmcg_budget:
            wall, cpu, _ = time_dhmcg(size, chains, args.dhmcg_sweeps, args.seed)
            rate, cpu_rate = updates / wall, updates / cpu
            record = rates(updates, wall, cpu, [wall], args.dhmcg_sweeps)
            record["extrapolated"] = False
        else:
            record = {
                "updates_per_second": rate,
                "updates_per_cpu_second": cpu_rate,
                "extrapolated": True,
            }
        results[(size, chains)]["discrete_hmc_gibbs"] = record
        print(
            f"  L={size:4d} chains={chains:3d} DiscreteHMCGibbs "
            f"{rate / 1e6:10.4f} M/s{' (extrapolated)' if record['extrapolated'] else ''}",
            flush=True,
        )


# -- layout and random-number variants of the numpyro_ebm heat bath ---------------


def two_draw_step(model):
    """Heat-bath sweep that draws a separate uniform array for each colour."""
    masks = [jnp.asarray(m) for m in colour_masks(model.lattice_shape)]

    def step(rng_key, s, params):
        for key, mask in zip(jax.random.split(rng_key), masks, strict=True):
            uniforms = jax.random.uniform(key, s.shape)
            probs = jax.nn.sigmoid(2 * BETA * model.local_field(params, s))
            s = jnp.where(mask, jnp.where(uniforms < probs, 1.0, -1.0), s)
        return s

    return step


def roll_step(model):
    """Sweep like the shipped kernel, with local fields from four ``jnp.roll`` calls."""
    masks = [jnp.asarray(m) for m in colour_masks(model.lattice_shape)]

    def step(rng_key, s, params):
        p = model.constrain(params)
        uniforms = jax.random.uniform(rng_key, s.shape)
        for mask in masks:
            neighbours = sum(jnp.roll(s, k, a) for k in (1, -1) for a in (0, 1))
            probs = jax.nn.sigmoid(2 * BETA * (p["coupling"] * neighbours + p["field"]))
            s = jnp.where(mask, jnp.where(uniforms < probs, 1.0, -1.0), s)
        return s

    return step


def compact_step(model):
    """Heat-bath sweep with each colour stored as an (L, L/2) array.

    A site of colour c in row i sits in column 2j + r with r = (c + i) mod 2,
    so its left/right neighbours in the other colour's array are columns j and
    j − 1 (r = 0) or j and j + 1 (r = 1). The sweep splits the lattice, updates
    both halves from compact local fields and interleaves them back.
    """
    size = model.lattice_shape[0]
    even_row = jnp.asarray(np.arange(size)[:, None] % 2 == 0)

    def local_field(other, offset_zero, params):
        p = model.constrain(params)
        vertical = jnp.roll(other, 1, 0) + jnp.roll(other, -1, 0)
        side = jnp.where(offset_zero, jnp.roll(other, 1, 1), jnp.roll(other, -1, 1))
        return p["coupling"] * (vertical + other + side) + p["field"]

    def step(rng_key, s, params):
        pairs = s.reshape(size, size // 2, 2)
        colour0 = jnp.where(even_row, pairs[..., 0], pairs[..., 1])
        colour1 = jnp.where(even_row, pairs[..., 1], pairs[..., 0])
        uniforms = jax.random.uniform(rng_key, (2, size, size // 2))
        field0 = local_field(colour1, even_row, params)
        colour0 = jnp.where(uniforms[0] < jax.nn.sigmoid(2 * BETA * field0), 1.0, -1.0)
        field1 = local_field(colour0, ~even_row, params)
        colour1 = jnp.where(uniforms[1] < jax.nn.sigmoid(2 * BETA * field1), 1.0, -1.0)
        even = jnp.where(even_row, colour0, colour1)
        odd = jnp.where(even_row, colour1, colour0)
        return jnp.stack([even, odd], axis=-1).reshape(size, size)

    return step


def shipped_step(model):
    kernel = checkerboard_heat_bath(model, BETA)

    def step(rng_key, s, params):
        return kernel.step(rng_key, CheckerboardState({"s": s}), params)[0].position[
            "s"
        ]

    return step


def time_variant(
    make_step, size, chains, num_sweeps, seed, repeats, impl="threefry2x32"
):
    model = IsingLattice((size, size))
    params = model.init_params()
    step = make_step(model)
    key_spins, key_run = jax.random.split(jax.random.key(seed))
    spins = jax.random.rademacher(key_spins, (chains, size, size), dtype=jnp.float32)
    key_run = jax.random.key(seed + 1, impl=impl)

    def run(rng_key, spins, params):
        def sweep(spins, key):
            keys = jax.random.split(key, chains)
            return jax.vmap(step, (0, 0, None))(keys, spins, params), None

        return jax.lax.scan(sweep, spins, jax.random.split(rng_key, num_sweeps))[0]

    compiled = jax.jit(run).lower(key_run, spins, params).compile()
    return timed(compiled, key_run, spins, params, repeats=repeats)


def measure_variants(args):
    """Spin updates per second of heat-bath variants, interleaved over repeats."""
    size, chains = args.variant_size, args.variant_chains
    sweeps = max(10, int(args.updates / (size * size * chains)))
    variants = {
        "shipped (masks, one uniform per site per sweep)": (
            shipped_step,
            "threefry2x32",
        ),
        "neighbour sums with jnp.roll": (roll_step, "threefry2x32"),
        "one uniform array per colour": (two_draw_step, "threefry2x32"),
        "compact (L, L/2) colour arrays": (compact_step, "threefry2x32"),
        "shipped, rbg keys": (shipped_step, "rbg"),
        "shipped, unsafe_rbg keys": (shipped_step, "unsafe_rbg"),
    }
    updates = size * size * chains * sweeps
    measured = {name: {"wall": [], "cpu": []} for name in variants}
    for _ in range(args.repeats):
        for name, (make_step, impl) in variants.items():
            wall, cpu, _ = time_variant(
                make_step, size, chains, sweeps, args.seed, 1, impl=impl
            )
            measured[name]["wall"].append(updates / wall)
            measured[name]["cpu"].append(updates / cpu)
    lines = [
        f"heat-bath variants, L = {size}, {chains} chains, {sweeps} sweeps, "
        f"{args.repeats} interleaved repeats: millions of spin updates per second, "
        "median (min-max)",
        f"  {'variant':50s} {'per wall second':>20s} {'per CPU second':>20s}",
    ]
    for name, values in measured.items():
        cells = []
        for clock in ("wall", "cpu"):
            v = np.array(values[clock]) / 1e6
            cells.append(f"{np.median(v):6.1f} ({v.min():5.1f}-{v.max():5.1f})")
        lines.append(f"  {name:50s} {cells[0]:>20s} {cells[1]:>20s}")
    print("\n".join(lines), flush=True)
    return {"size": size, "chains": chains, "sweeps": sweeps, "rates": measured}, lines


# -- report ----------------------------------------------------------------------


def table(results, with_dhmcg, clock="updates_per_second"):
    """Format the results; ``clock`` picks per wall-clock or per CPU second."""
    unit = "CPU second" if clock == "updates_per_cpu_second" else "second (wall)"
    header = (
        f"{'L':>4} {'chains':>6} {'ours HB':>9} {'ours Metr':>9} {'NumPy HB':>9}"
        + (f" {'DHMCG':>9}" if with_dhmcg else "")
        + f" {'ours/NumPy':>10}"
        + (f" {'ours/DHMCG':>10}" if with_dhmcg else "")
    )
    lines = [
        f"millions of spin updates per {unit}, median of the repeats",
        header,
        "-" * len(header),
    ]
    for (size, chains), row in results.items():
        ours, metropolis = row["heat_bath"][clock], row["metropolis"][clock]
        numpy_rate = row["numpy"][clock]
        line = f"{size:4d} {chains:6d} {ours / 1e6:9.1f} {metropolis / 1e6:9.1f}"
        line += f" {numpy_rate / 1e6:9.1f}"
        if with_dhmcg:
            dhmcg = row["discrete_hmc_gibbs"]
            mark = "*" if dhmcg["extrapolated"] else " "
            line += f" {dhmcg[clock] / 1e6:8.4f}{mark}"
        line += f" {ours / numpy_rate:10.2f}"
        if with_dhmcg:
            line += f" {ours / dhmcg[clock]:10.0f}"
        lines.append(line)
    lines.append("HB: heat bath; Metr: Metropolis; ours/X: ratio of ours HB to X")
    if with_dhmcg:
        lines.append(
            "DHMCG: NumPyro DiscreteHMCGibbs; * = not run at this chain count, the "
            "rate measured with fewer chains at the same L"
        )
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    load_before = os.getloadavg()
    results = {}
    for size in args.sizes:
        for chains in args.chains:
            row = results.setdefault((size, chains), {})
            sweeps = max(10, int(args.updates / (size * size * chains)))
            numpy_sweeps = max(2, sweeps // 10)
            for name, make_kernel in (
                ("heat_bath", checkerboard_heat_bath),
                ("metropolis", checkerboard_metropolis),
            ):
                timing = time_ours(
                    make_kernel,
                    size,
                    chains,
                    sweeps,
                    args.seed,
                    args.repeats,
                    args.chain_batch_size or None,
                )
                row[name] = rates(size * size * chains * sweeps, *timing, sweeps)
            timing = time_numpy(
                size, chains, numpy_sweeps, args.seed, max(1, args.repeats // 2)
            )
            row["numpy"] = rates(
                size * size * chains * numpy_sweeps, *timing, numpy_sweeps
            )
            print(
                f"  L={size:4d} chains={chains:3d} ours "
                f"{row['heat_bath']['updates_per_second'] / 1e6:7.1f} M/s, NumPy "
                f"{row['numpy']['updates_per_second'] / 1e6:7.1f} M/s",
                flush=True,
            )
        if not args.no_dhmcg:
            measure_dhmcg(args, size, results)

    report = "\n\n".join(
        table(results, not args.no_dhmcg, clock)
        for clock in ("updates_per_second", "updates_per_cpu_second")
    )
    print()
    print(report)
    variants = None
    if not args.no_variants:
        print()
        variants, lines = measure_variants(args)
        report += "\n\n" + "\n".join(lines)
    seconds = time.perf_counter() - start
    metrics = {
        "results": [
            {"size": size, "chains": chains, **row}
            for (size, chains), row in results.items()
        ],
        "variants": variants,
        "inverse_temperature": BETA,
        "table": report,
        "wall_seconds": seconds,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "numpyro": numpyro.__version__,
            "numpy": np.__version__,
            "numpyro_ebm": numpyro_ebm.__version__,
        },
        "device": str(jax.devices()[0]),
        "cpu_count": os.cpu_count(),
        "config": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
        },
    }
    (args.output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"\nwall time {seconds:.1f} s; wrote metrics.json to {args.output}")
    return metrics


if __name__ == "__main__":
    main()
