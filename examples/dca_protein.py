"""Fit a bmDCA Potts model to the Pfam PF00014 (Kunitz/BPTI) alignment.

The same pipeline as ``dca_rna.py`` on ``PF00014_mgap6.fasta`` (13,600
sequences × 53 positions, q = 21, M_eff = 4363.86 at 80 % identity). The
defaults (500 chains, η = 0.05, at most 200 updates) keep the run to minutes
on two CPU cores, fewer chains and updates than adabmDCA's 10,000 chains, so
the Pearson target of 0.95 is usually not reached; ``metrics.json`` records
where training stopped. Run with ``--help`` for the options.
"""

import runpy
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED_MSA = HERE.parents[1] / "shared" / "data" / "msa"
DEFAULTS = {
    "alignment": SHARED_MSA / "PF00014_mgap6.fasta",
    "alphabet": "protein",
    "output": Path("out/dca_protein"),
    "max_updates": 200,
}


def main(argv=None) -> dict:
    pipeline = runpy.run_path(str(HERE / "dca_rna.py"))
    return pipeline["main"](argv, DEFAULTS, __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
