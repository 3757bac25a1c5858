"""Boltzmann-machine direct coupling analysis (bmDCA) of sequence alignments.

:mod:`~numpyro_ebm.dca.training` fits a fully connected Potts model to the
reweighted, pseudocount-corrected frequencies of an alignment until the
model reproduces the data's connected correlations;
:mod:`~numpyro_ebm.dca.analysis` turns the fitted couplings into contact
scores and samples or scores sequences. Alignments are read with
:func:`~numpyro_ebm.data.fasta.read_alignment` and reweighted with
:func:`~numpyro_ebm.data.fasta.sequence_weights`; the command line is
``numpyro-ebm dca``.
"""

from numpyro_ebm.dca.analysis import (
    contact_scores,
    fresh_comparison,
    sample_sequences,
    sequence_energies,
    single_mutant_energies,
    top_contacts,
    zero_sum_gauge,
)
from numpyro_ebm.dca.training import (
    DEFAULT_LEARNING_RATE,
    DEFAULT_MIN_SEPARATION,
    DEFAULT_NUM_CHAINS,
    DEFAULT_NUM_SWEEPS,
    DEFAULT_TARGET_PEARSON,
    DCAResult,
    PearsonMonitor,
    dca_learner,
    dca_optimizer,
    default_pseudocount,
    fit_dca,
    frequencies,
    frequency_moments,
    profile_params,
)

__all__ = [
    "DEFAULT_LEARNING_RATE",
    "DEFAULT_MIN_SEPARATION",
    "DEFAULT_NUM_CHAINS",
    "DEFAULT_NUM_SWEEPS",
    "DEFAULT_TARGET_PEARSON",
    "DCAResult",
    "PearsonMonitor",
    "contact_scores",
    "dca_learner",
    "dca_optimizer",
    "default_pseudocount",
    "fit_dca",
    "fresh_comparison",
    "frequencies",
    "frequency_moments",
    "profile_params",
    "sample_sequences",
    "sequence_energies",
    "single_mutant_energies",
    "top_contacts",
    "zero_sum_gauge",
]
