"""Data readers: IDX (MNIST), aligned FASTA, Ising configurations, scikit-learn digits."""

from numpyro_ebm.data.digits import load_binary_digits
from numpyro_ebm.data.fasta import (
    ALPHABETS,
    PROTEIN_ALPHABET,
    RNA_ALPHABET,
    Alignment,
    decode_sequences,
    encode_sequences,
    parse_fasta,
    read_alignment,
    resolve_alphabet,
    sequence_weights,
    write_fasta,
)
from numpyro_ebm.data.idx import DATA_DIR_VARIABLE, load_mnist, read_idx
from numpyro_ebm.data.ising_configurations import (
    read_ising_configurations,
    temperature_from_name,
)

__all__ = [
    "ALPHABETS",
    "DATA_DIR_VARIABLE",
    "PROTEIN_ALPHABET",
    "RNA_ALPHABET",
    "Alignment",
    "decode_sequences",
    "encode_sequences",
    "load_binary_digits",
    "load_mnist",
    "parse_fasta",
    "read_alignment",
    "read_idx",
    "read_ising_configurations",
    "resolve_alphabet",
    "sequence_weights",
    "temperature_from_name",
    "write_fasta",
]
