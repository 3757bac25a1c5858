r"""Maximum-likelihood learning of energy models with MCMC fantasy particles.

The gradient of the average negative log-likelihood −L(θ) = ⟨E_θ⟩_data + log Z_θ
is

.. math::

    ∂_θ(−L) = ⟨∂_θ E_θ(x)⟩_{data} − ⟨∂_θ E_θ(x)⟩_{model} (+ ∂_θ E_{reg}(θ)),

and the model average comes from fantasy particles drawn by a kernel. One
update takes a minibatch, advances the fantasy particles ``num_sweeps`` steps
at the current θ, and applies an Optax step to the gradient of the surrogate

.. math::

    \bar E_θ(x_{data}) − \bar E_θ(\mathrm{sg}(x_{fantasy})) + E_{reg}(θ),

whose value is not the log-likelihood (use the estimators for that).

With ``method="pcd"`` the fantasy particles are persistent chains whose number
is independent of the batch size (Tieleman, "Training restricted Boltzmann
machines using approximations to the likelihood gradient", ICML 2008). With
``method="cd"`` the chains restart at the minibatch at every update
(contrastive divergence CD-k, Hinton, Neural Computation 14(8), 2002).
"""

import functools
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from numpyro_ebm.kernels.base import Kernel, random_position, step_chains
from numpyro_ebm.learning.penalty import Penalty, penalty_energy
from numpyro_ebm.learning.state import (
    LearnerState,
    TrainingDivergedError,
    TrainingHistory,
    TrainingResult,
    UpdateMetrics,
)
from numpyro_ebm.models.energy import EnergyModel
from numpyro_ebm.models.validation import check_weights
from numpyro_ebm.types import Array, ArrayLike, Configuration, Params, PRNGKey

METHODS = ("pcd", "cd")
# Host callbacks from inside the compiled epoch cost tens of microseconds each, so
# the progress bar is refreshed at most this many times per epoch.
PROGRESS_REPORTS_PER_EPOCH = 20
# Minimum time between two redraws of the progress bar, in seconds.
PROGRESS_MIN_INTERVAL = 0.1


def default_kernel(model: EnergyModel) -> Kernel:
    """Return the default kernel for ``model``.

    RBMs (binary or Gaussian visible units) get closed-form block Gibbs, and
    lattices with even sides get the checkerboard heat bath. Models exposing
    local fields and a coupling matrix get local-field Gibbs, and other
    discrete models single-site Gibbs. Continuous models get NumPyro's HMC, and
    mixed models Gibbs on the discrete sites with HMC on the continuous ones.
    """
    from numpyro_ebm.kernels.block_gibbs import block_gibbs
    from numpyro_ebm.kernels.local_field import local_field_gibbs
    from numpyro_ebm.kernels.site_gibbs import site_gibbs

    if callable(getattr(model, "visible_mean", None)):
        from numpyro_ebm.kernels.mixed import gaussian_block_gibbs

        return gaussian_block_gibbs(model)
    if callable(getattr(model, "hidden_logits", None)):
        return block_gibbs(model)
    lattice = getattr(model, "lattice_shape", None)
    if callable(getattr(model, "local_field", None)) and lattice is not None:
        if all(side % 2 == 0 for side in lattice):
            from numpyro_ebm.kernels.checkerboard import checkerboard_heat_bath

            return checkerboard_heat_bath(model)
    if callable(getattr(model, "local_fields", None)) and callable(
        getattr(model, "coupling_matrix", None)
    ):
        return local_field_gibbs(model)
    if all(site.is_discrete for site in model.sites):
        return site_gibbs(model)
    from numpyro_ebm.kernels.hmc import hmc
    from numpyro_ebm.kernels.mixed import mixed_gibbs

    if not any(site.is_discrete for site in model.sites):
        return hmc(model)
    return mixed_gibbs(model, "hmc")


class MaximumLikelihood:
    """Maximum-likelihood learner of an energy model, shaped like NumPyro's ``SVI``.

    Parameters
    ----------
    model
        The energy model to fit.
    optimizer
        Any Optax gradient transformation, for example ``optax.sgd(0.05)`` or
        ``optax.adam(1e-3)`` (schedules included).
    kernel
        Fantasy-particle kernel (``init``/``step`` pair). Defaults to block
        Gibbs for RBMs and single-site Gibbs for other discrete models.
    num_chains
        Number of persistent chains for ``method="pcd"``; ignored for ``"cd"``,
        where every minibatch example starts one chain.
    num_sweeps
        Kernel steps per update (the k of CD-k and PCD-k).
    method
        ``"pcd"`` (persistent chains) or ``"cd"`` (chains restarted at the
        minibatch).
    penalty
        L1/L2 penalties on chosen parameters, see :class:`Penalty`.
    chain_batch_size
        Advance the chains this many at a time (``jax.lax.map``) instead of all
        at once (``jax.vmap``, the default); see
        :func:`~numpyro_ebm.kernels.step_chains`. Faster for large lattices.

    Examples
    --------
    >>> import jax, optax
    >>> from numpyro_ebm.models import BernoulliRBM
    >>> rbm = BernoulliRBM(6, 2)
    >>> data = jax.random.bernoulli(jax.random.key(0), 0.3, (40, 6))
    >>> learner = MaximumLikelihood(rbm, optax.sgd(0.1), num_chains=8)
    >>> result = learner.run(jax.random.key(1), data, num_epochs=2, batch_size=10,
    ...                      progress_bar=False)
    >>> result.history.energy_gap.shape
    (8,)
    """

    def __init__(
        self,
        model: EnergyModel,
        optimizer: optax.GradientTransformation,
        *,
        kernel: Kernel | None = None,
        num_chains: int = 100,
        num_sweeps: int = 1,
        method: str = "pcd",
        penalty: Penalty | None = None,
        chain_batch_size: int | None = None,
    ):
        if method not in METHODS:
            raise ValueError(f"`method` must be one of {METHODS}; got {method!r}.")
        for name, value in (("num_chains", num_chains), ("num_sweeps", num_sweeps)):
            if not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")
        if not isinstance(model, EnergyModel):
            raise TypeError(
                "`model` must be an EnergyModel (for example BernoulliRBM or "
                f"EnergyModel.from_numpyro(...)); got {type(model).__name__}."
            )
        kernel = _as_kernel(kernel)
        if penalty is not None and not isinstance(penalty, Penalty):
            raise TypeError(
                "`penalty` must be a Penalty, for example Penalty(l2={'weights': 1e-4}); "
                f"got {type(penalty).__name__}."
            )
        if not isinstance(optimizer, optax.GradientTransformation):
            raise TypeError(
                "`optimizer` must be an optax.GradientTransformation such as "
                f"optax.sgd(0.05); got {type(optimizer).__name__}."
            )
        self.model = model
        self.optimizer = optimizer
        self.kernel = default_kernel(model) if kernel is None else kernel
        self.num_chains = int(num_chains)
        self.num_sweeps = int(num_sweeps)
        if chain_batch_size is not None:
            _check_positive_int("chain_batch_size", chain_batch_size)
        self.chain_batch_size = chain_batch_size
        self.method = method
        self.penalty = Penalty() if penalty is None else penalty
        self.penalty.check(model.param_names)
        self._jit_update = jax.jit(self.update)
        self._jit_epoch = jax.jit(self._epoch, static_argnums=(3, 5))
        self._progress = _Progress()

    # -- pure functions ----------------------------------------------------------

    def init(
        self,
        rng_key: PRNGKey,
        params: Params | None = None,
        *,
        init_position: Configuration | ArrayLike | None = None,
    ) -> LearnerState:
        """Create the initial learner state.

        Parameters
        ----------
        rng_key
            Random key for the chains and all later updates.
        params
            Unconstrained initial parameters; ``model.init_params()`` by default.
        init_position
            Initial visible configurations of the chains, with a leading axis of
            length ``num_chains`` (for example rows of the training data). By
            default each chain starts from a uniformly random configuration.
        """
        params = self.model.init_params() if params is None else dict(params)
        key_position, key_init, rng_key = jax.random.split(rng_key, 3)
        if init_position is None:
            keys = jax.random.split(key_position, self.num_chains)
            sites = self.model.visible_sites
            position = jax.vmap(lambda k: random_position(k, sites))(keys)
        else:
            position = self.model.as_configuration(init_position, name="init_position")
            count = jax.tree.leaves(position)[0].shape[0]
            if count != self.num_chains:
                raise ValueError(
                    f"`init_position` has {count} configurations but `num_chains` "
                    f"is {self.num_chains}; pass one configuration per chain."
                )
        chains = self._init_chains(key_init, position, params)
        opt_state = self.optimizer.init(params)
        return LearnerState(
            params, opt_state, chains, rng_key, jnp.zeros((), jnp.int32)
        )

    def _init_chains(self, rng_key, position, params):
        count = jax.tree.leaves(position)[0].shape[0]
        keys = jax.random.split(rng_key, count)
        return jax.vmap(self.kernel.init, in_axes=(0, 0, None))(keys, position, params)

    def _advance_chains(self, rng_key, chains, params):
        """Run ``num_sweeps`` kernel steps; return the chains and the last step's info."""

        def sweep(chains, key):
            count = jax.tree.leaves(chains.position)[0].shape[0]
            keys = jax.random.split(key, count)
            return step_chains(self.kernel, keys, chains, params, self.chain_batch_size)

        keys = jax.random.split(rng_key, self.num_sweeps)
        chains, infos = jax.lax.scan(sweep, chains, keys)
        last_info = jax.tree.map(lambda x: x[-1], infos)
        if self.kernel.adapt is not None:
            chains = self.kernel.adapt(chains, last_info)
        return chains, last_info

    def update(
        self, state: LearnerState, batch: Configuration, weights: Array | None = None
    ) -> tuple[LearnerState, UpdateMetrics]:
        """Take one maximum-likelihood step on a minibatch.

        Parameters
        ----------
        state
            Current learner state.
        batch
            Minibatch: a dict of visible site name to an array with a leading
            batch axis, or one array for a model with one visible site. It is
            not validated here (``update`` is traced); validate data once with
            ``model.as_configuration`` as :meth:`run` does.
        weights
            Optional non-negative per-example weights of shape ``(batch,)``.

        Returns
        -------
        tuple
            The new state and the update's :class:`UpdateMetrics`.
        """
        if not isinstance(batch, Mapping):
            batch = self.model.as_configuration(batch, name="batch", check=False)
        batch_size = jax.tree.leaves(batch)[0].shape[0]
        weights = jnp.ones(batch_size) if weights is None else weights

        def data_term(params):
            energies = self.model.energy(params, batch)
            return _weighted_mean(energies, weights), energies

        return self._update(state, data_term, weights, batch)

    def update_full_batch(
        self, state: LearnerState, data_energy: Callable[[Params], Array]
    ) -> tuple[LearnerState, UpdateMetrics]:
        """Take one maximum-likelihood step with the data term in closed form.

        ``data_energy(params)`` returns the mean energy ⟨E_θ⟩ of the whole
        training set, for example from its sufficient statistics; see
        :meth:`run_full_batch`. Only persistent chains (``method="pcd"``)
        apply, since contrastive divergence starts its chains at data rows.
        """
        return self._update(
            state, lambda params: (data_energy(params), None), None, None
        )

    def _update(self, state, data_term, weights, batch):
        """Advance the chains and step on the data term minus the fantasy term."""
        rng_key, key_init, key_sweep = jax.random.split(state.rng_key, 3)
        if self.method == "cd":
            chains = self._init_chains(key_init, batch, state.params)
            chain_weights = weights
        else:
            chains = state.chains
            chain_weights = jnp.ones(jax.tree.leaves(chains.position)[0].shape[0])
        chains, info = self._advance_chains(key_sweep, chains, state.params)
        fantasy = jax.lax.stop_gradient(chains.position)

        def surrogate(params):
            data_energy, data_energies = data_term(params)
            fantasy_energies = self.model.energy(params, fantasy)
            fantasy_energy = _weighted_mean(fantasy_energies, chain_weights)
            regulariser = penalty_energy(self.penalty, self.model.constrain(params))
            if self.penalty.energy_magnitude:
                squares = _weighted_mean(data_energies**2, weights) + _weighted_mean(
                    fantasy_energies**2, chain_weights
                )
                regulariser = regulariser + self.penalty.energy_magnitude * squares
            return data_energy - fantasy_energy + regulariser, (
                data_energy,
                fantasy_energy,
            )

        grads, (data_energy, fantasy_energy) = jax.grad(surrogate, has_aux=True)(
            state.params
        )
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        if weights is not None:
            # A minibatch whose weights are all zero carries no data: keep θ and
            # the optimiser state instead of stepping without a data term.
            has_data = jnp.sum(weights) > 0
            params = jax.tree.map(
                lambda new, old: jnp.where(has_data, new, old), params, state.params
            )
            opt_state = jax.tree.map(
                lambda new, old: jnp.where(has_data, new, old),
                opt_state,
                state.opt_state,
            )

        metrics = UpdateMetrics(
            data_energy=data_energy,
            fantasy_energy=fantasy_energy,
            energy_gap=data_energy - fantasy_energy,
            grad_norm=optax.tree.norm(grads),
            kernel_info=_mean_info(info),
        )
        new_state = LearnerState(params, opt_state, chains, rng_key, state.step + 1)
        return new_state, metrics

    def _epoch(self, state, data, weights, batch_size, shuffle_key, report_every):
        """Shuffle, split into minibatches and scan the update over one epoch.

        With ``report_every > 0`` every ``report_every``-th update sends its step
        and energy gap to the host progress bar through ``jax.debug.callback``.
        """
        count = weights.shape[0]
        order = jax.random.permutation(shuffle_key, count)
        num_batches = count // batch_size

        def take(x):
            x = x[order]
            return x.reshape((num_batches, batch_size) + x.shape[1:])

        batches = jax.tree.map(take, data)
        batch_weights = take(weights)

        def body(state, inputs):
            batch, batch_weight = inputs
            state, metrics = self.update(state, batch, batch_weight)
            if report_every:
                self._report(state, metrics, report_every)
            return state, metrics

        return jax.lax.scan(body, state, (batches, batch_weights))

    # -- driver ------------------------------------------------------------------

    def run(
        self,
        rng_key: PRNGKey,
        data: Configuration | ArrayLike,
        *,
        num_epochs: int,
        batch_size: int,
        weights: ArrayLike | None = None,
        metrics: Mapping[str, Callable[[Params], Any]]
        | Callable[[Params], Mapping[str, Any]]
        | None = None,
        metrics_every: int = 1,
        init_state: LearnerState | None = None,
        init_params: Params | None = None,
        chains_from_data: bool = False,
        progress_bar: bool = True,
        callbacks: Sequence[Callable[[int, LearnerState], None]] | None = None,
    ) -> TrainingResult:
        """Fit the model to ``data`` for ``num_epochs`` epochs of minibatch updates.

        Each epoch shuffles the data and pads it with zero-weight rows to a whole
        number of minibatches, so every example is used. It then runs one jitted
        scan of :meth:`update`, which compiles once for the whole run.

        Parameters
        ----------
        rng_key
            Random key (ignored when ``init_state`` is given).
        data
            Training data: an array for a model with one visible site, or a dict
            keyed by visible site name. Integer and boolean arrays are cast.
        num_epochs, batch_size
            Number of passes over the data and examples per minibatch.
        weights
            Optional non-negative per-example weights.
        metrics
            Functions ``f(params) -> scalar`` keyed by name, or one function
            ``f(params) -> {name: scalar}``, evaluated every ``metrics_every``
            epochs (and after the last) outside the compiled loop, for example
            an exact log-likelihood.
        init_state
            A state from an earlier run (``result.state``) to continue training.
        init_params
            Unconstrained initial parameters for a new run.
        chains_from_data
            Start the persistent chains at randomly chosen training examples
            instead of uniformly random configurations.
        progress_bar
            Show a tqdm bar over updates, refreshed from inside the compiled
            loop, with the epoch, the data–fantasy energy gap and the latest
            metrics. The bar is off when the ``CI`` environment variable is set.
        callbacks
            Functions ``f(epoch, state)`` called after every epoch with the
            1-based epoch number and the learner state, for example a
            :class:`~numpyro_ebm.diagnostics.TrainingMonitor`. Training stops
            after the epoch in which a callback returns ``True`` (for example
            when a target Pearson correlation of the moments is reached).

        Returns
        -------
        TrainingResult
            Parameters, final chains, optimiser state, the full learner state
            and the training history.

        Raises
        ------
        TrainingDivergedError
            If an energy, gradient or parameter becomes non-finite. The error
            names the update, and its ``.state`` is the state from before the
            epoch in which that happened (every value in it is finite).

        Any other exception raised during the epochs, ``KeyboardInterrupt``
        included, carries the state after the last completed epoch in its
        ``training_state`` attribute, so no training progress is lost.
        """
        data = self.model.as_configuration(data, name="data")
        count = jax.tree.leaves(data)[0].shape[0]
        weights = jnp.asarray(check_weights(weights, count), dtype=float)
        _check_positive_int("num_epochs", num_epochs)
        _check_positive_int("batch_size", batch_size)
        _check_positive_int("metrics_every", metrics_every)
        if batch_size > count:
            raise ValueError(
                f"`batch_size` is {batch_size} but `data` has only {count} examples; "
                f"use a batch size of at most {count}."
            )
        metrics = _check_metrics(metrics)
        rng_key = _as_key(rng_key)
        if hasattr(init_state, "history") and hasattr(init_state, "state"):
            init_state = init_state.state  # a TrainingResult
        if init_state is not None:
            if init_params is not None:
                raise ValueError(
                    "pass either `init_state` (to continue training) or `init_params` "
                    "(to start a new run), not both."
                )
            self._check_state(init_state, batch_size)
        elif init_params is not None:
            _check_params(self.model, init_params, "init_params")

        state = init_state
        if state is None:
            init_position = None
            if chains_from_data or self.method == "cd":
                rng_key, key_rows = jax.random.split(rng_key)
                size = batch_size if self.method == "cd" else self.num_chains
                rows = jax.random.choice(key_rows, count, (size,), replace=size > count)
                init_position = jax.tree.map(lambda x: x[rows], data)
            learner = self if self.method == "pcd" else self._with_chains(batch_size)
            state = learner.init(rng_key, init_params, init_position=init_position)

        padded_data, padded_weights = _pad_to_batches(data, weights, batch_size)

        def epoch(state, report_every):
            shuffle_key = jax.random.fold_in(state.rng_key, state.step)
            return self._jit_epoch(
                state,
                padded_data,
                padded_weights,
                batch_size,
                shuffle_key,
                report_every,
            )

        updates_per_epoch = padded_weights.shape[0] // batch_size
        return self._train(
            state,
            epoch,
            num_epochs,
            updates_per_epoch,
            metrics,
            metrics_every,
            progress_bar,
            callbacks,
        )

    def run_full_batch(
        self,
        rng_key: PRNGKey,
        data_energy: Callable[[Params], Array],
        *,
        num_updates: int,
        updates_per_epoch: int = 1,
        metrics: Mapping[str, Callable[[Params], Any]]
        | Callable[[Params], Mapping[str, Any]]
        | None = None,
        metrics_every: int = 1,
        init_state: LearnerState | None = None,
        init_params: Params | None = None,
        init_position: Configuration | ArrayLike | None = None,
        progress_bar: bool = True,
        callbacks: Sequence[Callable[[int, LearnerState], None]] | None = None,
    ) -> TrainingResult:
        r"""Fit the model with the data term given as a function of θ.

        When every update uses the whole training set, the data term
        ⟨E_θ⟩_data often has a closed form that costs far less than the
        energies of all examples. For a model whose energy is linear in its
        parameters, E_θ(x) = −θ·T(x), it is −θ·⟨T⟩_data, so the statistics ⟨T⟩
        are computed once; for a Potts model they are the one- and two-site
        frequencies, pseudocount included, as in
        :func:`~numpyro_ebm.dca.fit_dca`. Each update advances the persistent
        chains and steps on

        .. math::

            \mathrm{data\_energy}(θ) − \bar E_θ(\mathrm{sg}(x_{fantasy}))
            + E_{reg}(θ).

        Parameters
        ----------
        rng_key
            Random key (ignored when ``init_state`` is given).
        data_energy
            Traceable function ``f(params) -> scalar``: the mean energy of the
            training data at the unconstrained parameters.
        num_updates
            Number of updates; rounded up to whole epochs.
        updates_per_epoch
            Updates per compiled scan, between two calls of the callbacks.
        metrics, metrics_every, init_state, init_params, progress_bar, callbacks
            As in :meth:`run`, with an epoch of ``updates_per_epoch`` updates.
        init_position
            Initial configurations of the chains for a new run, one per chain;
            uniformly random by default.

        Returns
        -------
        TrainingResult

        Raises
        ------
        ValueError
            With ``method="cd"`` or an ``energy_magnitude`` penalty, which need
            the energies of data rows.

        Examples
        --------
        >>> import jax, jax.numpy as jnp, optax
        >>> from numpyro_ebm.models.pairwise import SpinGlass, symmetric_couplings
        >>> model = SpinGlass(3)
        >>> m = jnp.full(3, 0.4)  # independent spins with ⟨s_i⟩ = 0.4
        >>> def data_energy(params):
        ...     couplings = symmetric_couplings(params["couplings"])
        ...     return -0.5 * m @ couplings @ m - m @ params["fields"]
        >>> learner = MaximumLikelihood(model, optax.sgd(0.2), num_chains=200)
        >>> result = learner.run_full_batch(jax.random.key(0), data_energy,
        ...                                 num_updates=300, progress_bar=False)
        >>> bool(jnp.allclose(result.params["fields"], jnp.arctanh(0.4), atol=0.15))
        True
        """
        if not callable(data_energy):
            raise TypeError(
                "`data_energy` must be a function params -> mean data energy; got "
                f"{type(data_energy).__name__}."
            )
        if self.method != "pcd":
            raise ValueError(
                "run_full_batch needs persistent chains (method='pcd'); contrastive "
                "divergence starts its chains at data rows, so use run() for it."
            )
        if self.penalty.energy_magnitude:
            raise ValueError(
                "the `energy_magnitude` penalty needs the energy of every data row; "
                "use run() with the data, or drop the penalty."
            )
        _check_positive_int("num_updates", num_updates)
        _check_positive_int("updates_per_epoch", updates_per_epoch)
        _check_positive_int("metrics_every", metrics_every)
        metrics = _check_metrics(metrics)
        rng_key = _as_key(rng_key)
        if hasattr(init_state, "history") and hasattr(init_state, "state"):
            init_state = init_state.state
        state = self._start_state(rng_key, init_state, init_params, init_position)
        value = jax.eval_shape(data_energy, state.params)
        if getattr(value, "shape", None) != ():
            raise ValueError(
                "`data_energy` must return a scalar; got shape "
                f"{getattr(value, 'shape', type(value).__name__)}."
            )

        @functools.partial(jax.jit, static_argnums=1)
        def scan_updates(state, report_every):
            def body(state, _):
                state, update_metrics = self.update_full_batch(state, data_energy)
                if report_every:
                    self._report(state, update_metrics, report_every)
                return state, update_metrics

            return jax.lax.scan(body, state, length=updates_per_epoch)

        num_epochs = -(-num_updates // updates_per_epoch)
        return self._train(
            state,
            scan_updates,
            num_epochs,
            updates_per_epoch,
            metrics,
            metrics_every,
            progress_bar,
            callbacks,
        )

    def _start_state(self, rng_key, init_state, init_params, init_position):
        """Check ``init_state`` or build a new state for a full-batch run."""
        if init_state is not None:
            if init_params is not None or init_position is not None:
                raise ValueError(
                    "pass either `init_state` (to continue training) or "
                    "`init_params`/`init_position` (to start a new run), not both."
                )
            self._check_state(init_state, self.num_chains)
            return init_state
        if init_params is not None:
            _check_params(self.model, init_params, "init_params")
        return self.init(rng_key, init_params, init_position=init_position)

    def _report(self, state, metrics, report_every):
        """Send the step and energy gap to the progress bar every few updates."""
        jax.lax.cond(
            state.step % report_every == 0,
            lambda: jax.debug.callback(
                self._progress.update_to, state.step, metrics.energy_gap
            ),
            lambda: None,
        )

    def _train(
        self,
        state,
        epoch,
        num_epochs,
        updates_per_epoch,
        metrics,
        metrics_every,
        progress_bar,
        callbacks,
    ) -> TrainingResult:
        """Run ``epoch(state, report_every)`` repeatedly with history and callbacks."""
        history = _HistoryBuilder(metrics)
        show = progress_bar and not _running_in_ci()
        # At most PROGRESS_REPORTS_PER_EPOCH host callbacks per epoch, so the bar
        # costs little even when updates take microseconds.
        report_every = (
            max(1, updates_per_epoch // PROGRESS_REPORTS_PER_EPOCH) if show else 0
        )
        self._progress.start(
            total=num_epochs * updates_per_epoch, first_step=int(state.step), show=show
        )
        try:
            for index in range(num_epochs):
                last_good = state
                state, update_metrics = epoch(state, report_every)
                _raise_if_diverged(update_metrics, state, last_good)
                history.add_updates(update_metrics)
                if metrics and (
                    (index + 1) % metrics_every == 0 or index + 1 == num_epochs
                ):
                    history.add_metrics(index, state.params)
                self._progress.end_epoch(
                    index + 1, num_epochs, int(state.step), history.postfix()
                )
                stop = [callback(index + 1, state) for callback in callbacks or ()]
                if any(_is_true(flag) for flag in stop):
                    break
        except BaseException as error:
            if not isinstance(error, TrainingDivergedError):
                error.training_state = state
                error.add_note(
                    "numpyro_ebm: the learner state after the last completed epoch is "
                    "in `error.training_state`; pass it as `init_state` to continue."
                )
            raise
        finally:
            self._progress.close()

        return TrainingResult(
            params=state.params,
            chains=state.chains,
            opt_state=state.opt_state,
            state=state,
            history=history.build(),
        )

    def _check_state(self, state: Any, batch_size: int) -> None:
        """Reject a state from another model, optimiser or number of chains."""
        if not isinstance(state, LearnerState):
            raise TypeError(
                "`init_state` must be the `state` of an earlier TrainingResult; got "
                f"{type(state).__name__}."
            )
        _check_params(self.model, state.params, "init_state.params")
        expected = jax.tree.structure(self.optimizer.init(state.params))
        if jax.tree.structure(state.opt_state) != expected:
            raise ValueError(
                "`init_state.opt_state` was made by a different optimiser; continue "
                "with the optimiser of the earlier run, or start from its parameters "
                "with `init_params=result.params`."
            )
        count = jax.tree.leaves(state.chains.position)[0].shape[0]
        expected = batch_size if self.method == "cd" else self.num_chains
        if count != expected:
            setting = "`batch_size`" if self.method == "cd" else "`num_chains`"
            raise ValueError(
                f"`init_state` contains {count} chains, but {setting} is {expected}; "
                f"continue with the same {setting}."
            )
        position = jax.tree.map(lambda x: x[:1], state.chains.position)
        fresh = jax.eval_shape(
            lambda: self._init_chains(jax.random.key(0), position, state.params)
        )
        if jax.tree.structure(state.chains) != jax.tree.structure(fresh):
            raise ValueError(
                f"`init_state.chains` are {type(state.chains).__name__} states, not "
                f"those of this learner's kernel ({type(fresh).__name__}); continue "
                "with the kernel of the earlier run, or start from its parameters "
                "with `init_params=result.params`."
            )

    def _with_chains(self, num_chains: int) -> "MaximumLikelihood":
        learner = object.__new__(type(self))
        learner.__dict__.update(self.__dict__)
        learner.num_chains = num_chains
        return learner


def _mean_info(info: Any) -> dict[str, Array]:
    """Average each field of a kernel's per-chain info over the chains."""
    if not hasattr(info, "_asdict"):
        return {}
    return {
        name: jnp.mean(jnp.asarray(value, dtype=float))
        for name, value in info._asdict().items()
    }


def _running_in_ci() -> bool:
    """Return whether the ``CI`` environment variable is set to a true value."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _weighted_mean(values: Array, weights: Array) -> Array:
    """Weighted mean, zero when every weight is zero (instead of 0/0)."""
    total = jnp.sum(weights)
    return jnp.sum(values * weights) / jnp.where(total > 0, total, 1.0)


def _is_true(flag: Any) -> bool:
    """Return whether a callback's result is a boolean True (Python, NumPy or JAX)."""
    if flag is None or np.ndim(flag) != 0:
        return False
    value = np.asarray(flag)
    return value.dtype == np.bool_ and bool(value)


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer; got {value!r}.")


def _as_kernel(kernel: Any) -> Kernel | None:
    """Accept a Kernel, or an MCMCKernel class of this library wrapping one."""
    if kernel is None or isinstance(kernel, Kernel):
        return kernel
    inner = getattr(kernel, "kernel", None)
    if isinstance(inner, Kernel):
        return inner
    raise TypeError(
        "`kernel` must be a Kernel, as returned by a factory such as "
        f"block_gibbs(model), or one of its MCMCKernel classes; got {kernel!r}."
    )


def _as_key(rng_key: Any) -> PRNGKey:
    if isinstance(rng_key, int | np.integer) and not isinstance(rng_key, bool):
        return jax.random.key(int(rng_key))
    return rng_key


def _check_params(model: EnergyModel, params: Any, name: str) -> None:
    """Raise unless ``params`` has the model's parameter names and shapes."""
    reference = model.init_params()
    if not isinstance(params, Mapping) or set(params) != set(reference):
        got = sorted(params) if isinstance(params, Mapping) else type(params).__name__
        raise ValueError(
            f"`{name}` must have the parameters {sorted(reference)} of the model; got "
            f"{got}."
        )
    for key, value in reference.items():
        if jnp.shape(params[key]) != jnp.shape(value):
            raise ValueError(
                f"`{name}[{key!r}]` has shape {jnp.shape(params[key])}, but the model "
                f"expects {jnp.shape(value)}."
            )
        if not bool(jnp.all(jnp.isfinite(jnp.asarray(params[key], dtype=float)))):
            raise ValueError(
                f"`{name}[{key!r}]` contains NaN or infinite values; pass finite "
                "parameters."
            )


def _check_metrics(metrics: Any) -> Any:
    if metrics is None or callable(metrics):
        return metrics
    if not isinstance(metrics, Mapping) or not all(
        callable(f) for f in metrics.values()
    ):
        raise TypeError(
            "`metrics` must be a function params -> {name: scalar} or a dict of name "
            f"to function params -> scalar; got {metrics!r}."
        )
    return metrics


def _pad_to_batches(data, weights, batch_size):
    """Append zero-weight copies of the first rows up to a multiple of the batch size."""
    count = weights.shape[0]
    padding = (-count) % batch_size
    if padding == 0:
        return data, weights
    rows = jnp.arange(padding) % count
    data = jax.tree.map(lambda x: jnp.concatenate([x, x[rows]]), data)
    weights = jnp.concatenate([weights, jnp.zeros(padding, weights.dtype)])
    return data, weights


@jax.jit
def _all_finite(tree: Any) -> Array:
    """Return whether every array in ``tree`` is finite, in one device call."""
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _raise_if_diverged(metrics: UpdateMetrics, state: LearnerState, last_good) -> None:
    finite = np.isfinite(np.asarray(metrics.data_energy))
    finite &= np.isfinite(np.asarray(metrics.fantasy_energy))
    finite &= np.isfinite(np.asarray(metrics.grad_norm))
    params_finite = bool(_all_finite(state.params))
    if finite.all() and params_finite:
        return
    first = int(np.argmin(finite)) if not finite.all() else finite.size - 1
    update = int(last_good.step) + first + 1
    raise TrainingDivergedError(
        f"training diverged at update {update}: an energy, gradient or parameter "
        "became non-finite. Lower the learning rate, add an L2 penalty, or check "
        "the data; `error.state` is the state from before this epoch.",
        state=last_good,
    )


class _HistoryBuilder:
    """Accumulate per-update metrics and per-epoch user metrics on the host."""

    def __init__(self, metrics):
        self.metrics = metrics
        self.updates: list[UpdateMetrics] = []
        self.metric_values: dict[str, list[float]] = {}
        self.metric_epochs: list[int] = []

    def add_updates(self, metrics: UpdateMetrics) -> None:
        self.updates.append(jax.device_get(metrics))

    def add_metrics(self, epoch: int, params: Params) -> None:
        if callable(self.metrics):
            values = self.metrics(params)
            if not isinstance(values, Mapping):
                raise TypeError(
                    "the `metrics` function must return a dict of name to scalar; got "
                    f"{type(values).__name__}."
                )
        else:
            values = {name: fn(params) for name, fn in self.metrics.items()}
        if self.metric_values and set(values) != set(self.metric_values):
            raise ValueError(
                f"the `metrics` function returned the keys {sorted(values)} at epoch "
                f"{epoch + 1} but {sorted(self.metric_values)} before; return the same "
                "keys at every evaluation."
            )
        self.metric_epochs.append(epoch + 1)
        for name, value in values.items():
            if jnp.size(value) != 1:
                raise ValueError(
                    f"metric {name!r} must be a scalar; got shape {jnp.shape(value)}."
                )
            self.metric_values.setdefault(name, []).append(float(value))

    def postfix(self) -> dict[str, str]:
        last = self.updates[-1]
        postfix = {"gap": f"{float(np.mean(last.energy_gap)):+.3f}"}
        for name, values in self.metric_values.items():
            postfix[name] = f"{values[-1]:.4g}"
        return postfix

    def build(self) -> TrainingHistory:
        def concat(field):
            return np.concatenate([np.asarray(getattr(u, field)) for u in self.updates])

        kernel_info = {
            name: np.concatenate(
                [np.asarray(u.kernel_info[name]) for u in self.updates]
            )
            for name in self.updates[0].kernel_info
        }
        return TrainingHistory(
            data_energy=concat("data_energy"),
            fantasy_energy=concat("fantasy_energy"),
            energy_gap=concat("energy_gap"),
            grad_norm=concat("grad_norm"),
            kernel_info=kernel_info,
            metrics={k: np.asarray(v) for k, v in self.metric_values.items()},
            metric_epochs=np.asarray(self.metric_epochs, dtype=int),
        )


class _Progress:
    """A tqdm bar over updates, advanced from host callbacks at a bounded rate."""

    def __init__(self):
        self.bar = None
        self.last_draw = 0.0
        self.first_step = 0
        self.postfix: dict[str, str] = {}

    def start(self, total: int, first_step: int, show: bool) -> None:
        self.first_step = first_step
        self.postfix = {}
        self.bar = tqdm(total=total, desc="training", unit="update", disable=not show)

    def update_to(self, step, gap) -> None:
        if self.bar is None or self.bar.disable:
            return
        now = time.monotonic()
        if now - self.last_draw < PROGRESS_MIN_INTERVAL:
            return
        self.last_draw = now
        self.bar.n = int(step) - self.first_step
        self.bar.set_postfix(
            {**self.postfix, "gap": f"{float(gap):+.3f}"}, refresh=False
        )
        self.bar.refresh()

    def end_epoch(self, epoch: int, num_epochs: int, step: int, postfix: dict) -> None:
        if self.bar is None:
            return
        self.postfix = {"epoch": f"{epoch}/{num_epochs}", **postfix}
        self.bar.n = step - self.first_step
        self.bar.set_postfix(self.postfix, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
