r"""Reader of aligned FASTA files and sequence reweighting for Potts models.

Sequences are encoded as integers by their position in an alphabet: the
protein alphabet ``-ACDEFGHIKLMNPQRSTVWY`` (q = 21), the RNA alphabet
``-ACGU`` (q = 5), or any string of distinct characters. The gap ``-`` is
state 0 in both built-in alphabets.

Phylogenetically close sequences are down-weighted by the usual rule

.. math::

    w_m = \frac{1}{\#\{n : \mathrm{id}(m, n) ≥ θ\}}, \qquad
    \mathrm{id}(m, n) = \frac{1}{L} Σ_{i=1}^{L} [σ_{mi} = σ_{ni}],

where gaps count as matching states, the count includes m itself, and
θ = 0.8 by default. The effective number of sequences is M_eff = Σ_m w_m.
The comparison is ≥ θ: it differs from > θ whenever θ·L is an integer.

References
----------
Rosset, L. et al. (2025). adabmDCA 2.0 — a flexible but easy-to-use package
for Direct Coupling Analysis. BMC Bioinformatics 26.
"""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

PROTEIN_ALPHABET = "-ACDEFGHIKLMNPQRSTVWY"
RNA_ALPHABET = "-ACGU"
ALPHABETS = {"protein": PROTEIN_ALPHABET, "rna": RNA_ALPHABET}
GAP = "-"
# Pfam and Rfam mark insert states (columns outside the match model) with
# lower-case letters and '.'.
INSERT_GAP = "."
UNKNOWN_POLICIES = ("gap", "reject")
DEFAULT_IDENTITY_THRESHOLD = 0.8
# Rows compared against the whole alignment at once: a (1000, M) boolean count
# array stays near 100 MB for M = 10⁵ sequences.
DEFAULT_BLOCK_SIZE = 1000
# Relative tolerance when turning θ·L into a whole number of matching
# positions, so that θ·L = 108.80000000000001 still means 109 positions.
_THRESHOLD_TOLERANCE = 1e-9


class Alignment(NamedTuple):
    """An integer-encoded multiple sequence alignment.

    Attributes
    ----------
    sequences
        States of shape (M, L), dtype int8 by default: the index of each
        letter in ``alphabet``.
    headers
        The M header lines without the leading ``>``.
    alphabet
        The alphabet that defines the encoding; q = ``len(alphabet)``.
    """

    sequences: np.ndarray
    headers: list[str]
    alphabet: str


def resolve_alphabet(alphabet: str) -> str:
    """Return the letters of ``alphabet``: a built-in name or the letters themselves.

    Examples
    --------
    >>> resolve_alphabet("rna")
    '-ACGU'
    >>> resolve_alphabet("01")
    '01'
    """
    if not isinstance(alphabet, str):
        raise TypeError(f"`alphabet` must be a string; got {type(alphabet).__name__}.")
    letters = ALPHABETS.get(alphabet.lower(), alphabet)
    if len(letters) < 2 or len(set(letters)) != len(letters):
        raise ValueError(
            f"`alphabet` must be 'protein', 'rna' or a string of at least two "
            f"distinct letters; got {alphabet!r}."
        )
    return letters


def parse_fasta(text: str) -> tuple[list[str], list[str]]:
    r"""Split FASTA text into headers and sequences (joined over wrapped lines).

    Examples
    --------
    >>> parse_fasta(">a\nAC\nGU\n>b\nAAAA\n")
    (['a', 'b'], ['ACGU', 'AAAA'])
    """
    headers: list[str] = []
    chunks: list[list[str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            headers.append(line[1:].strip())
            chunks.append([])
        elif not chunks:
            raise ValueError(
                f"line {number} contains sequence letters before the first '>' "
                "header; FASTA records start with a '>' line."
            )
        else:
            chunks[-1].append(line)
    return headers, ["".join(chunk) for chunk in chunks]


def encode_sequences(
    sequences: Sequence[str],
    alphabet: str = "protein",
    *,
    unknown: str = "reject",
    drop_inserts: bool = True,
    headers: Sequence[str] | None = None,
    dtype=np.int8,
) -> np.ndarray:
    """Encode aligned sequences as integers, the index of each letter in ``alphabet``.

    Parameters
    ----------
    sequences
        Aligned sequences, all of the same length after insert handling.
    alphabet
        ``"protein"``, ``"rna"`` or a string of distinct letters.
    unknown
        What to do with a letter outside the alphabet (``X``, ``B``, ``N``, …):
        ``"reject"`` raises ``ValueError`` naming the sequence and position,
        ``"gap"`` encodes it as state 0 (the gap of the built-in alphabets).
    drop_inserts
        If true, drop lower-case letters and ``.`` (Pfam and Rfam insert
        columns) before encoding. If false, upper-case lower-case letters and
        read ``.`` as ``-``, keeping the insert columns.
    headers
        Names used in error messages; defaults to 1-based record numbers.
    dtype
        Integer dtype of the result; int8 covers alphabets of up to 127 letters.

    Returns
    -------
    numpy.ndarray
        States of shape (M, L).

    Raises
    ------
    ValueError
        On an unknown letter with ``unknown="reject"``, sequences of
        different lengths, an empty list, or an invalid option.

    Examples
    --------
    >>> encode_sequences(["-ACgU.", "UUAaC."], "rna").tolist()
    [[0, 1, 2, 4], [4, 4, 1, 2]]
    >>> encode_sequences(["ANU"], "rna", unknown="gap").tolist()
    [[1, 0, 4]]
    """
    letters = resolve_alphabet(alphabet)
    if unknown not in UNKNOWN_POLICIES:
        raise ValueError(
            f"`unknown` must be one of {UNKNOWN_POLICIES}; got {unknown!r}."
        )
    if len(sequences) == 0:
        raise ValueError("`sequences` is empty; the alignment needs at least one.")
    if len(letters) > np.iinfo(dtype).max:
        raise ValueError(
            f"`dtype` {np.dtype(dtype).name} cannot hold {len(letters)} states; "
            "use np.int32."
        )
    names = (
        [str(n) for n in range(1, len(sequences) + 1)] if headers is None else headers
    )
    table = np.full(256, -1, dtype=np.int16)
    for state, letter in enumerate(letters):
        table[ord(letter)] = state

    encoded = []
    for name, sequence in zip(names, sequences, strict=True):
        if drop_inserts:
            sequence = "".join(
                c for c in sequence if not (c.islower() or c == INSERT_GAP)
            )
        else:
            sequence = sequence.upper().replace(INSERT_GAP, GAP)
        raw = np.frombuffer(sequence.encode("latin-1", "replace"), dtype=np.uint8)
        states = table[raw]
        bad = np.flatnonzero(states < 0)
        if bad.size and unknown == "reject":
            position = int(bad[0])
            raise ValueError(
                f"sequence {name!r} has the letter {sequence[position]!r} at aligned "
                f"position {position + 1}, which is not in the alphabet {letters!r}; "
                "pass unknown='gap' to read such letters as gaps."
            )
        states[bad] = 0
        encoded.append(states)

    lengths = {row.size for row in encoded}
    if len(lengths) != 1:
        first = encoded[0].size
        index = next(n for n, row in enumerate(encoded) if row.size != first)
        raise ValueError(
            f"sequence {names[index]!r} has {encoded[index].size} aligned positions "
            f"but the first sequence has {first}; the sequences must be aligned "
            "(with drop_inserts=True, only upper-case letters and '-' count)."
        )
    return np.stack(encoded).astype(dtype)


def read_alignment(
    path: str | os.PathLike,
    alphabet: str = "protein",
    *,
    unknown: str = "reject",
    drop_inserts: bool = True,
    dtype=np.int8,
) -> Alignment:
    r"""Read an aligned FASTA file into integer states and headers.

    The options are those of :func:`encode_sequences`.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file has no records or a sequence cannot be encoded.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.fasta"
    >>> _ = path.write_text(">s1\nAC-U\n>s2\nGGAU\n")
    >>> read_alignment(path, "rna").sequences.tolist()
    [[1, 2, 0, 4], [3, 3, 1, 4]]
    """
    path = Path(path)
    headers, sequences = parse_fasta(path.read_text(encoding="latin-1"))
    if not sequences:
        raise ValueError(f"{path} contains no FASTA records ('>' header lines).")
    letters = resolve_alphabet(alphabet)
    states = encode_sequences(
        sequences,
        letters,
        unknown=unknown,
        drop_inserts=drop_inserts,
        headers=headers,
        dtype=dtype,
    )
    return Alignment(states, headers, letters)


def decode_sequences(states: np.ndarray, alphabet: str = "protein") -> list[str]:
    """Turn integer states of shape (M, L) back into strings.

    Examples
    --------
    >>> decode_sequences(np.array([[0, 1, 4]]), "rna")
    ['-AU']
    """
    letters = np.array(list(resolve_alphabet(alphabet)))
    states = np.asarray(states)
    if (
        states.ndim != 2
        or states.min(initial=0) < 0
        or states.max(initial=0) >= len(letters)
    ):
        raise ValueError(
            f"`states` must be a 2-D array of states 0..{len(letters) - 1}; got shape "
            f"{states.shape}."
        )
    return ["".join(row) for row in letters[states]]


def write_fasta(
    path: str | os.PathLike, headers: Sequence[str], sequences: Sequence[str]
) -> None:
    r"""Write sequences to ``path`` in FASTA format, one line per sequence.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "out.fasta"
    >>> write_fasta(path, ["a"], ["AC-U"])
    >>> path.read_text()
    '>a\nAC-U\n'
    """
    lines = [
        f">{name}\n{sequence}\n"
        for name, sequence in zip(headers, sequences, strict=True)
    ]
    Path(path).write_text("".join(lines))


@jax.jit
def _neighbour_counts(block: jax.Array, columns: jax.Array, min_matches) -> jax.Array:
    """Count, for each row of ``block``, the sequences with ≥ ``min_matches`` matches.

    ``columns`` is the alignment transposed to (L, M). Scanning over positions
    keeps one (block, M) match counter instead of a (block, M, L) comparison,
    which is about five times faster on CPU.
    """
    dtype = jnp.int16 if columns.shape[0] < np.iinfo(np.int16).max else jnp.int32

    def add_position(matches, column_pair):
        block_column, column = column_pair
        return matches + (block_column[:, None] == column[None, :]).astype(dtype), None

    initial = jnp.zeros((block.shape[0], columns.shape[1]), dtype)
    matches, _ = jax.lax.scan(add_position, initial, (block.T, columns))
    return jnp.sum(matches >= min_matches, axis=1)


def sequence_weights(
    sequences: np.ndarray,
    threshold: float = DEFAULT_IDENTITY_THRESHOLD,
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
) -> np.ndarray:
    r"""Compute the weights w_m = 1 / #{n : id(m, n) ≥ θ} of aligned sequences.

    Identity is the fraction of the L aligned positions with the same state,
    gaps included, and the count includes the sequence itself, so
    0 < w_m ≤ 1. ``block_size`` rows are compared with all M sequences at a
    time, so memory grows as ``block_size`` · M · L bytes, not M² · L.

    Parameters
    ----------
    sequences
        Integer states of shape (M, L).
    threshold
        Identity θ in (0, 1] at or above which two sequences count as
        neighbours. θ = 1 counts only identical sequences.
    block_size
        Rows compared per step.

    Returns
    -------
    numpy.ndarray
        Float64 weights of shape (M,); their sum is M_eff.

    Examples
    --------
    >>> states = np.array([[0, 1, 1, 1, 1], [0, 1, 1, 1, 2], [3, 3, 3, 3, 3]])
    >>> sequence_weights(states, 0.8).tolist()
    [0.5, 0.5, 1.0]
    """
    states = np.asarray(sequences)
    if states.ndim != 2 or states.shape[0] == 0 or states.shape[1] == 0:
        raise ValueError(
            f"`sequences` must be a non-empty (M, L) array of states; got shape "
            f"{states.shape}."
        )
    if not np.issubdtype(states.dtype, np.integer):
        raise ValueError(f"`sequences` must be integer states; got {states.dtype}.")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"`threshold` must be in (0, 1]; got {threshold}.")
    if (
        isinstance(block_size, bool)
        or not isinstance(block_size, int)
        or block_size < 1
    ):
        raise ValueError(
            f"`block_size` must be a positive integer; got {block_size!r}."
        )
    count, length = states.shape
    # id ≥ θ  ⇔  matches ≥ θ·L  ⇔  matches ≥ ceil(θ·L) for whole numbers of matches.
    min_matches = int(np.ceil(threshold * length * (1.0 - _THRESHOLD_TOLERANCE)))
    device_states = jnp.asarray(states, dtype=jnp.int32)
    columns = device_states.T
    counts = np.empty(count, dtype=np.int64)
    size = min(block_size, count)
    for start in range(0, count, size):
        block = device_states[start : start + size]
        if block.shape[0] < size:  # pad the last block to keep one compiled shape
            block = jnp.concatenate([block, device_states[: size - block.shape[0]]])
        stop = min(start + size, count)
        result = _neighbour_counts(block, columns, min_matches)
        counts[start:stop] = np.asarray(result)[: stop - start]
    return 1.0 / counts
