"""Sample the 2-D Ising model around its critical point and compare with exact values.

The model is the zero-field ferromagnetic Ising model (J = 1) on an L×L
periodic lattice, sampled with the checkerboard heat-bath kernel (or
Metropolis) of numpyro_ebm at several temperatures around Onsager's
T_c = 2.269. All temperatures and chains advance together: the kernel is
built inside ``jax.vmap`` over the inverse temperatures, which enter it as a
traced array. Every chain starts from the all-up state, which at low
temperature avoids the long-lived striped states that a random start can
fall into, and runs a burn-in before its trace is recorded.

For each temperature the script prints the energy per spin and the absolute
magnetisation per spin |m| with their Monte Carlo standard errors, computed
from the effective sample size of the per-chain traces (arviz-stats), beside
exact values:

* energy per spin: exact for the L×L torus, from Kaufman's (1949) closed-form
  partition function;
* |m|: Yang's (1952) spontaneous magnetisation of the infinite lattice, below
  T_c only. A finite torus has a larger ⟨|m|⟩ than that (by a correction that
  shrinks with L), so this comparison is a guide, not a test.

Writes ``ising_sampling.png`` (both quantities against T with the exact
curves) and ``metrics.json`` to the output folder. The default temperatures
are 1.75, 2.0, 2.25, T_c, 2.5, 2.75 and 3.0, the temperatures at which the
finite-torus energies are commonly tabulated.

Run ``python examples/ising_sampling.py --help`` for the options.
"""

import argparse
import json
import os
import time
from pathlib import Path

import arviz_base
import arviz_stats
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from tqdm.auto import tqdm

from numpyro_ebm.kernels.checkerboard import (
    checkerboard_heat_bath,
    checkerboard_metropolis,
)
from numpyro_ebm.models.ising import (
    CRITICAL_INVERSE_TEMPERATURE,
    IsingLattice,
    spontaneous_magnetisation,
    torus_energy_per_spin,
)

CRITICAL_TEMPERATURE = 1 / CRITICAL_INVERSE_TEMPERATURE
KERNELS = {"heat-bath": checkerboard_heat_bath, "metropolis": checkerboard_metropolis}
# Sweeps per jitted block: the progress bar advances once per block.
BLOCK = 100


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--size", type=int, default=32, help="lattice side L (even, at least 2)"
    )
    parser.add_argument(
        "--temperatures",
        type=float,
        nargs="+",
        default=[1.75, 2.0, 2.25, CRITICAL_TEMPERATURE, 2.5, 2.75, 3.0],
        help="temperatures T = 1/β in units of J (default: the L = 40/64 table)",
    )
    parser.add_argument("--chains", type=int, default=32, help="chains per temperature")
    parser.add_argument(
        "--burn-in", type=int, default=1000, help="sweeps discarded at the start"
    )
    parser.add_argument(
        "--sweeps", type=int, default=5000, help="recorded sweeps per chain"
    )
    parser.add_argument(
        "--kernel", choices=sorted(KERNELS), default="heat-bath", help="sampler"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--output", type=Path, default=Path("out/ising_sampling"), help="output folder"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar"
    )
    args = parser.parse_args(argv)
    if args.size < 2 or args.size % 2:
        parser.error("--size must be even and at least 2")
    if min(args.temperatures) <= 0:
        parser.error("--temperatures must be positive")
    if args.chains < 2 or args.sweeps < 4 or args.burn_in < 0:
        parser.error("need --chains >= 2, --sweeps >= 4 and --burn-in >= 0")
    return args


def make_block(model, make_kernel, num_chains, num_sweeps):
    """Jitted ``num_sweeps`` sweeps of every chain at every β, with their trace."""
    n = model.num_spins

    def sweep_one_temperature(beta, states, rng_key, params):
        kernel = make_kernel(model, beta)
        keys = jax.random.split(rng_key, num_chains)
        states, _ = jax.vmap(kernel.step, (0, 0, None))(keys, states, params)
        s = states.position["s"]
        record = {
            "energy_per_spin": model.energy(params, states.position) / n,
            "abs_m": jnp.abs(jnp.sum(s, axis=(-2, -1))) / n,
        }
        return states, record

    @jax.jit
    def block(states, rng_key, betas, params):
        def sweep(states, key):
            keys = jax.random.split(key, betas.shape[0])
            return jax.vmap(sweep_one_temperature, (0, 0, 0, None))(
                betas, states, keys, params
            )

        keys = jax.random.split(rng_key, num_sweeps)
        return jax.lax.scan(sweep, states, keys)

    return block


def sample(args, model, betas):
    """Run every chain; return traces (temperature, chain, draw) and timings.

    The blocks are compiled ahead of time, so the sampling time excludes
    compilation.
    """
    make_kernel = KERNELS[args.kernel]
    params = model.init_params()
    num_temps = betas.shape[0]
    shape = (num_temps, args.chains) + model.lattice_shape
    init = jax.vmap(jax.vmap(make_kernel(model).init, (0, 0, None)), (0, 0, None))
    keys = jax.random.split(jax.random.key(args.seed), num_temps * args.chains + 1)
    states = init(
        keys[1:].reshape(num_temps, args.chains), {"s": jnp.ones(shape)}, params
    )

    total = args.burn_in + args.sweeps
    sizes = [BLOCK] * (total // BLOCK) + ([total % BLOCK] if total % BLOCK else [])
    rng_key = keys[0]
    start = time.perf_counter()
    blocks = {
        size: make_block(model, make_kernel, args.chains, size)
        .lower(states, rng_key, betas, params)
        .compile()
        for size in set(sizes)
    }
    compile_seconds = time.perf_counter() - start
    show = not args.no_progress and not os.environ.get("CI")
    records, done = [], 0
    start = time.perf_counter()
    for size in tqdm(sizes, desc="sweeps (blocks of 100)", disable=not show):
        rng_key, key = jax.random.split(rng_key)
        states, record = blocks[size](states, key, betas, params)
        # The block holds sweeps done, ..., done + size − 1; keep those after burn-in.
        first = max(0, args.burn_in - done)
        if first < size:
            records.append(jax.tree.map(lambda v, i=first: np.asarray(v[i:]), record))
        done += size
    seconds = time.perf_counter() - start
    traces = {
        name: np.moveaxis(np.concatenate([r[name] for r in records]), 0, -1)
        for name in records[0]
    }
    return traces, seconds, compile_seconds


def summarise(traces, temperatures, size):
    """Estimates, ESS-based standard errors and exact values per temperature."""
    rows = []
    for i, temperature in enumerate(temperatures):
        beta = 1 / temperature
        tree = arviz_base.from_dict(
            {"posterior": {name: value[i] for name, value in traces.items()}}
        )
        mean = tree.posterior.dataset.mean(("chain", "draw"))
        mcse = arviz_stats.mcse(tree)
        ess = arviz_stats.ess(tree)
        energy_exact = torus_energy_per_spin((size, size), beta)
        magnet_exact = (
            spontaneous_magnetisation(beta)
            if beta > CRITICAL_INVERSE_TEMPERATURE
            else None
        )
        row = {"temperature": temperature, "inverse_temperature": beta}
        for name, key, exact in (
            ("energy_per_spin", "exact", energy_exact),
            ("abs_magnetisation", "exact_infinite_lattice", magnet_exact),
        ):
            var = "energy_per_spin" if name == "energy_per_spin" else "abs_m"
            estimate, error = float(mean[var]), float(mcse[var].values)
            row[name] = {
                "estimate": estimate,
                "standard_error": error,
                "ess_bulk": float(ess[var].values),
                key: exact,
                "error_in_standard_errors": None
                if exact is None
                else (estimate - exact) / error,
            }
        rows.append(row)
    return rows


def print_table(rows, size):
    print(
        f"\n{'T':>7} {'β':>7} | {'E/N':>9} {'± s.e.':>8} {f'exact L={size}':>11}"
        f" {'err/se':>7} | {'|m|':>7} {'± s.e.':>8} {'Yang, ∞':>8} {'err/se':>7}"
    )
    for row in rows:
        energy, magnet = row["energy_per_spin"], row["abs_magnetisation"]
        exact_m = magnet["exact_infinite_lattice"]
        print(
            f"{row['temperature']:7.4f} {row['inverse_temperature']:7.4f} | "
            f"{energy['estimate']:9.5f} {energy['standard_error']:8.5f} "
            f"{energy['exact']:11.5f} {energy['error_in_standard_errors']:7.2f} | "
            f"{magnet['estimate']:7.4f} {magnet['standard_error']:8.5f} "
            + (
                f"{exact_m:8.4f} {magnet['error_in_standard_errors']:7.1f}"
                if exact_m is not None
                else f"{'-':>8} {'-':>7}"
            )
        )


def plot(rows, size, path):
    temperatures = np.array([row["temperature"] for row in rows])
    grid = np.linspace(temperatures.min() - 0.1, temperatures.max() + 0.1, 200)
    fig, (ax_e, ax_m) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)

    energy = np.array([torus_energy_per_spin((size, size), 1 / t) for t in grid])
    ax_e.plot(grid, energy, color="black", lw=1, label=f"exact, {size}×{size} torus")
    estimates = np.array([row["energy_per_spin"]["estimate"] for row in rows])
    errors = np.array([row["energy_per_spin"]["standard_error"] for row in rows])
    ax_e.errorbar(temperatures, estimates, 2 * errors, fmt="o", ms=4, label="MCMC")
    ax_e.set(xlabel="temperature T", ylabel="energy per spin", title="⟨E⟩ / N")

    below = grid[grid < CRITICAL_TEMPERATURE]
    yang = [spontaneous_magnetisation(1 / t) for t in below] + [0.0]
    below = np.append(below, CRITICAL_TEMPERATURE)
    ax_m.plot(below, yang, color="black", lw=1, ls="--", label="Yang, infinite lattice")
    estimates = np.array([row["abs_magnetisation"]["estimate"] for row in rows])
    errors = np.array([row["abs_magnetisation"]["standard_error"] for row in rows])
    ax_m.errorbar(temperatures, estimates, 2 * errors, fmt="o", ms=4, label="MCMC")
    ax_m.set(xlabel="temperature T", ylabel="|m|", title="⟨|m|⟩")

    for ax in (ax_e, ax_m):
        ax.axvline(CRITICAL_TEMPERATURE, color="grey", lw=0.8, ls=":")
        ax.legend(title="error bars: 2 s.e.", fontsize="small")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    model = IsingLattice((args.size, args.size))
    temperatures = [float(t) for t in args.temperatures]
    betas = jnp.asarray([1 / t for t in temperatures])

    traces, seconds, compile_seconds = sample(args, model, betas)
    rows = summarise(traces, temperatures, args.size)
    print_table(rows, args.size)
    plot(rows, args.size, args.output / "ising_sampling.png")

    energy_errors = [
        abs(r["energy_per_spin"]["error_in_standard_errors"]) for r in rows
    ]
    magnet_errors = [
        abs(r["abs_magnetisation"]["error_in_standard_errors"])
        for r in rows
        if r["abs_magnetisation"]["error_in_standard_errors"] is not None
    ]
    updates = len(rows) * args.chains * (args.burn_in + args.sweeps) * model.num_spins
    metrics = {
        "size": args.size,
        "kernel": args.kernel,
        "temperatures": rows,
        "max_abs_error_in_standard_errors": max(energy_errors),
        "abs_magnetisation_max_abs_error_in_standard_errors_infinite_lattice": (
            max(magnet_errors) if magnet_errors else None
        ),
        "sampling_seconds": seconds,
        "compile_seconds": compile_seconds,
        "spin_updates_per_second": updates / seconds,
        "config": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
        },
    }
    print(
        f"\nenergy per spin: max |estimate − exact| = {max(energy_errors):.2f} "
        f"standard errors over {len(rows)} temperatures (exact {args.size}×"
        f"{args.size} torus)"
    )
    if magnet_errors:
        print(
            f"|m| below T_c: max |estimate − Yang| = {max(magnet_errors):.1f} standard "
            "errors (infinite-lattice value; the finite torus is not expected to match)"
        )
    print(
        f"sampling: {seconds:.1f} s ({updates / seconds / 1e6:.3g} M spin updates per "
        f"second) after {compile_seconds:.1f} s of compilation"
    )
    (args.output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"wrote ising_sampling.png and metrics.json to {args.output}")
    return metrics


if __name__ == "__main__":
    main()
