"""Cost per update of HMC fantasy particles: numpyro_ebm against hand-written JAX and MCMC.

Model: ``GaussianEnergy(dim)`` (d = 5 by default), trained on samples from a
random Gaussian, with ``--chains`` persistent chains, ``--num-steps``
leapfrog steps per HMC transition, one transition per update, Adam with
learning rate 1e-3 and minibatches of ``--batch-size`` examples.

Methods, each timed on the same model, data, chains and optimiser:

* ``numpyro_ebm update``: ``jax.jit(MaximumLikelihood(..., kernel=hmc(...)).update)``
  called once per update. The kernel drives NumPyro's HMC (``numpyro.infer.hmc.hmc``)
  and adapts its step size in ``Kernel.adapt``.
* ``hand-written update``: one jitted function with a leapfrog HMC written
  directly in JAX (gradient cached between leapfrog steps, the same step-size
  jitter and controller), followed by the same surrogate gradient and Adam
  step. This is the baseline the library's overhead is measured against.
* ``numpyro_ebm scan`` and ``hand-written scan``: the same two updates
  scanned with ``jax.lax.scan`` over the ``--batches`` minibatches of one
  epoch, time per update = epoch time / updates per epoch.
* ``numpyro_ebm run``: ``learner.run`` over whole epochs, which adds its
  per-epoch host work (shuffling, the divergence check, the history) to the
  scan.
* ``NUTS update``: the learner's update with ``nuts(...)`` (max tree depth 10).
* ``MCMC.run per update``: ``numpyro.infer.MCMC`` with NumPyro's ``HMC`` on a
  NumPyro model taking θ as an argument (``jit_model_args=True``), run for one
  sample per update from the previous update's last state, followed by the
  same jitted gradient step. Each run retraces and recompiles.

Compilation is excluded: every method runs once before timing. Timings are
interleaved over ``--rounds`` rounds, so load from other processes hits all
methods alike. The table reports the median over rounds, and each ratio is the
median over rounds of the per-round ratio.

Writes ``metrics.json`` to ``--output``. Run from the repository root::

    python benchmarks/hmc_fantasy.py
"""

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
from numpyro.distributions import constraints
from numpyro.infer import HMC, MCMC

import numpyro_ebm
from numpyro_ebm.kernels.hmc import adapted_step_size, hmc, nuts
from numpyro_ebm.learning import MaximumLikelihood
from numpyro_ebm.models.gaussian import GaussianEnergy

LEARNING_RATE = 1e-3
INITIAL_STEP_SIZE = 0.3
JITTER = 0.2
TARGET_ACCEPTANCE = 0.8
ADAPTATION_RATE = 0.5


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=5, help="dimension d of x")
    parser.add_argument("--chains", type=int, default=256, help="persistent chains")
    parser.add_argument(
        "--num-steps", type=int, default=5, help="leapfrog steps per transition"
    )
    parser.add_argument("--batch-size", type=int, default=256, help="data per update")
    parser.add_argument(
        "--batches", type=int, default=20, help="minibatches per epoch (data size)"
    )
    parser.add_argument(
        "--updates", type=int, default=200, help="timed updates per method and round"
    )
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument(
        "--mcmc-updates", type=int, default=5, help="timed MCMC.run updates in total"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("out/benchmarks/hmc_fantasy"),
        help="folder for metrics.json",
    )
    args = parser.parse_args(argv)
    for name in ("dim", "chains", "num_steps", "batch_size", "batches", "updates"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.rounds <= 0 or args.mcmc_updates <= 0:
        parser.error("--rounds and --mcmc-updates must be positive")
    return args


def make_data(args) -> np.ndarray:
    rng = np.random.default_rng(args.seed)
    factor = rng.normal(size=(args.dim, args.dim)) / np.sqrt(args.dim)
    covariance = factor @ factor.T + 0.5 * np.eye(args.dim)
    mean = rng.normal(size=args.dim)
    count = args.batch_size * args.batches
    return rng.multivariate_normal(mean, covariance, size=count).astype(np.float32)


# -- hand-written baseline -------------------------------------------------------------


def hand_written_update(model, optimizer, num_steps: int):
    """Return a jitted update: leapfrog HMC on every chain, then an Adam step."""

    def potential(params, x):
        return model.energy(params, x[None])[0]

    value_and_grad = jax.value_and_grad(potential, argnums=1)

    def transition(rng_key, x, params, step_size):
        key_jitter, key_momentum, key_accept = jax.random.split(rng_key, 3)
        step_size = step_size * jax.random.uniform(
            key_jitter, minval=1.0 - JITTER, maxval=1.0 + JITTER
        )
        energy, grad = value_and_grad(params, x)
        momentum = jax.random.normal(key_momentum, x.shape)

        def leapfrog(_, carry):
            x, p, grad, energy = carry
            p = p - 0.5 * step_size * grad
            x = x + step_size * p
            energy, grad = value_and_grad(params, x)
            p = p - 0.5 * step_size * grad
            return x, p, grad, energy

        x_new, p_new, _, energy_new = jax.lax.fori_loop(
            0, num_steps, leapfrog, (x, momentum, grad, energy)
        )
        delta = energy_new + 0.5 * p_new @ p_new - energy - 0.5 * momentum @ momentum
        accept_prob = jnp.minimum(1.0, jnp.exp(-jnp.nan_to_num(delta, nan=jnp.inf)))
        accepted = jax.random.uniform(key_accept) < accept_prob
        return jnp.where(accepted, x_new, x), accept_prob

    def update(state, batch):
        params, opt_state, chains, step_size, rng_key = state
        rng_key, key_sweep = jax.random.split(rng_key)
        keys = jax.random.split(key_sweep, chains.shape[0])
        chains, accept = jax.vmap(transition, (0, 0, None, 0))(
            keys, chains, params, step_size
        )
        step_size = adapted_step_size(
            step_size, accept, TARGET_ACCEPTANCE, ADAPTATION_RATE
        )
        fantasy = jax.lax.stop_gradient(chains)

        def surrogate(params):
            return jnp.mean(model.energy(params, batch)) - jnp.mean(
                model.energy(params, fantasy)
            )

        grads = jax.grad(surrogate)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, opt_state, chains, step_size, rng_key), jnp.mean(accept)

    return update


# -- timing ----------------------------------------------------------------------------


def time_calls(function, state, count: int):
    """Call ``state = function(state)`` ``count`` times; return µs per call and state."""
    start = time.perf_counter()
    for _ in range(count):
        state = function(state)
    jax.block_until_ready(state)
    return (time.perf_counter() - start) / count * 1e6, state


def mcmc_run_per_update(args, model, data, params):
    """Time MCMC.run once per update, resuming from the previous run's last state."""

    def numpyro_model(params):
        x = numpyro.sample(
            "x", dist.ImproperUniform(constraints.real_vector, (), (args.dim,))
        )
        numpyro.factor("neg_energy", -model.energy(params, x[None])[0])

    kernel = HMC(
        numpyro_model,
        step_size=INITIAL_STEP_SIZE,
        num_steps=args.num_steps,
        trajectory_length=None,
        adapt_step_size=False,
        adapt_mass_matrix=False,
    )
    mcmc = MCMC(
        kernel,
        num_warmup=0,
        num_samples=1,
        num_chains=args.chains,
        chain_method="vectorized",
        progress_bar=False,
        jit_model_args=True,
    )
    optimizer = optax.adam(LEARNING_RATE)
    opt_state = optimizer.init(params)
    batch = {"x": jnp.asarray(data[: args.batch_size])}

    @jax.jit
    def gradient_step(params, opt_state, fantasy):
        def surrogate(params):
            return jnp.mean(model.energy(params, batch)) - jnp.mean(
                model.energy(params, fantasy)
            )

        grads = jax.grad(surrogate)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    init = {"x": jnp.zeros((args.chains, args.dim))}
    mcmc.run(jax.random.key(args.seed), params, init_params=init)
    seconds = []
    for _ in range(args.mcmc_updates):
        start = time.perf_counter()
        mcmc.post_warmup_state = mcmc.last_state
        mcmc.run(mcmc.post_warmup_state.rng_key, params)
        params, opt_state = gradient_step(
            params, opt_state, {"x": mcmc.last_state.z["x"]}
        )
        jax.block_until_ready(params)
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds) * 1e6)


def cpu_model() -> str:
    """Return the CPU model name from ``lscpu``, or ``platform.processor()``."""
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor()
    for line in output.splitlines():
        if line.startswith("Model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def environment() -> dict:
    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
        "optax": optax.__version__,
        "numpyro_ebm": getattr(numpyro_ebm, "__version__", "unknown"),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "jax_devices": [str(device) for device in jax.devices()],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


class Method:
    """A timed method: ``function(state) -> state`` runs ``updates`` updates."""

    def __init__(self, function, state, calls_per_round: int, updates: int = 1):
        self.function = function
        self.state = state
        self.calls_per_round = calls_per_round
        self.updates = updates


def build_methods(args, model, data) -> tuple[dict[str, Method], tuple]:
    """Build the per-call, scanned and learner.run methods on shared data and chains.

    Also returns the jitted HMC and NUTS updates and the batch, to read the
    kernels' diagnostics after timing.
    """
    params = model.init_params()
    key = jax.random.key(args.seed)
    batch = {"x": jnp.asarray(data[: args.batch_size])}
    batches = jnp.asarray(data).reshape(args.batches, args.batch_size, args.dim)
    if args.chains <= len(data):
        chains = jnp.asarray(data[: args.chains])
    else:
        chains = jax.random.normal(key, (args.chains, args.dim))

    def make_learner(kernel):
        return MaximumLikelihood(
            model, optax.adam(LEARNING_RATE), kernel=kernel, num_chains=args.chains
        )

    hmc_learner = make_learner(
        hmc(model, step_size=INITIAL_STEP_SIZE, num_steps=args.num_steps)
    )
    nuts_learner = make_learner(nuts(model, step_size=INITIAL_STEP_SIZE))
    library_update = jax.jit(hmc_learner.update)
    nuts_update = jax.jit(nuts_learner.update)
    hand_update = jax.jit(
        hand_written_update(model, optax.adam(LEARNING_RATE), args.num_steps)
    )
    library_state = hmc_learner.init(key, params, init_position=chains)
    hand_state = (
        params,
        optax.adam(LEARNING_RATE).init(params),
        chains,
        jnp.full(args.chains, INITIAL_STEP_SIZE),
        key,
    )

    @jax.jit
    def library_epoch(state):
        def body(state, batch):
            return hmc_learner.update(state, {"x": batch})

        return jax.lax.scan(body, state, batches)[0]

    @jax.jit
    def hand_epoch(state):
        return jax.lax.scan(hand_update, state, batches)[0]

    epochs = max(1, args.updates // args.batches)

    def run_epochs(state):
        return hmc_learner.run(
            key,
            data,
            num_epochs=epochs,
            batch_size=args.batch_size,
            init_state=state,
            progress_bar=False,
        ).state

    run_state = hmc_learner.run(
        key, data, num_epochs=1, batch_size=args.batch_size, progress_bar=False
    ).state
    return {
        "numpyro_ebm update": Method(
            lambda state: library_update(state, batch)[0], library_state, args.updates
        ),
        "hand-written update": Method(
            lambda state: hand_update(state, batch["x"])[0], hand_state, args.updates
        ),
        "NUTS update": Method(
            lambda state: nuts_update(state, batch)[0],
            nuts_learner.init(key, params, init_position=chains),
            max(1, args.updates // 4),
        ),
        "numpyro_ebm scan": Method(library_epoch, library_state, epochs, args.batches),
        "hand-written scan": Method(hand_epoch, hand_state, epochs, args.batches),
        "numpyro_ebm run": Method(run_epochs, run_state, 1, epochs * args.batches),
    }, (library_update, nuts_update, batch)


def time_methods(methods: dict[str, Method], rounds: int) -> dict[str, np.ndarray]:
    """Return µs per update of every method in each round, after one untimed call."""
    for method in methods.values():
        method.state = jax.block_until_ready(method.function(method.state))
    timings = {name: [] for name in methods}
    for _ in range(rounds):
        for name, method in methods.items():
            micros, method.state = time_calls(
                method.function, method.state, method.calls_per_round
            )
            timings[name].append(micros / method.updates)
    return {name: np.asarray(values) for name, values in timings.items()}


def median_ratio(timings, numerator: str, denominator: str) -> float:
    return float(np.median(timings[numerator] / timings[denominator]))


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    data = make_data(args)
    model = GaussianEnergy(args.dim)
    methods, (library_update, nuts_update, batch) = build_methods(args, model, data)
    timings = time_methods(methods, args.rounds)
    mcmc_micros = mcmc_run_per_update(args, model, data, model.init_params())

    table = {name: float(np.median(values)) for name, values in timings.items()}
    table["MCMC.run per update"] = mcmc_micros
    ratios = {
        "update / hand-written update": median_ratio(
            timings, "numpyro_ebm update", "hand-written update"
        ),
        "scan / hand-written scan": median_ratio(
            timings, "numpyro_ebm scan", "hand-written scan"
        ),
        "run / hand-written scan": median_ratio(
            timings, "numpyro_ebm run", "hand-written scan"
        ),
        "NUTS / HMC update": median_ratio(timings, "NUTS update", "numpyro_ebm update"),
        "MCMC.run / update": mcmc_micros / table["numpyro_ebm update"],
    }
    _, nuts_metrics = nuts_update(methods["NUTS update"].state, batch)
    _, hmc_metrics = library_update(methods["numpyro_ebm update"].state, batch)
    metrics = {
        "microseconds_per_update": table,
        "microseconds_per_update_by_round": {
            name: values.tolist() for name, values in timings.items()
        },
        "ratios": ratios,
        "nuts_mean_leapfrog_steps": float(nuts_metrics.kernel_info["num_steps"]),
        "hmc_acceptance_rate": float(hmc_metrics.kernel_info["acceptance_rate"]),
        "config": {
            k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
        },
        "environment": environment(),
    }

    print(f"\nd = {args.dim}, {args.chains} chains, {args.num_steps} leapfrog steps")
    print(f"{'method':32s} {'µs/update':>12s}")
    for name, value in table.items():
        print(f"{name:32s} {value:12.0f}")
    for name, value in ratios.items():
        print(f"ratio {name:32s} {value:8.2f}")
    print(
        "NUTS mean leapfrog steps per transition: "
        f"{metrics['nuts_mean_leapfrog_steps']:.1f}"
    )
    print(f"HMC acceptance rate at the end: {metrics['hmc_acceptance_rate']:.3f}")
    (args.output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"\nwrote {args.output / 'metrics.json'}")
    return metrics


if __name__ == "__main__":
    main()
