"""Reader of Ising configurations stored as bit-packed NumPy arrays.

The 40 × 40 data set of Mehta et al. (2019) comes as flat uint8 arrays made
with ``numpy.packbits``, one file per temperature (``ising_L40_T2.25.npy``);
bit 1 is spin +1 and bit 0 is spin −1.

References
----------
Mehta, P. et al. (2019). A high-bias, low-variance introduction to Machine
Learning for physicists. Physics Reports 810.
"""

import os
import re
from pathlib import Path

import numpy as np

# Side of the square lattices of the Mehta et al. data set.
DEFAULT_SIDE = 40
_TEMPERATURE_PATTERN = re.compile(r"_T(\d+(?:\.\d+)?)\.npy$")


def read_ising_configurations(
    path: str | os.PathLike, side: int = DEFAULT_SIDE
) -> np.ndarray:
    """Read bit-packed ±1 configurations of a ``side`` × ``side`` lattice.

    Returns
    -------
    numpy.ndarray
        Float32 spins of shape (count, side, side).

    Raises
    ------
    ValueError
        If the number of bits is not a multiple of ``side``².

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ising_L2_T1.0.npy"
    >>> np.save(path, np.packbits(np.array([1, 0, 0, 1], dtype=np.uint8)))
    >>> read_ising_configurations(path, side=2)[0].tolist()
    [[1.0, -1.0], [-1.0, 1.0]]
    """
    packed = np.load(Path(path))
    bits = np.unpackbits(packed.reshape(-1))
    spins_per_configuration = side * side
    # packbits pads the last byte, so drop the padding bits if any.
    count = bits.size // spins_per_configuration
    if count == 0 or bits.size - count * spins_per_configuration >= 8:
        raise ValueError(
            f"{path} holds {bits.size} bits, not a whole number of {side}×{side} "
            "configurations; pass the lattice side as `side`."
        )
    bits = bits[: count * spins_per_configuration]
    return (2.0 * bits.reshape(count, side, side) - 1.0).astype(np.float32)


def temperature_from_name(path: str | os.PathLike) -> float:
    """Return T from a file name such as ``ising_L40_T2.25.npy``.

    Examples
    --------
    >>> temperature_from_name("data/ising_L40_T2.25.npy")
    2.25
    """
    match = _TEMPERATURE_PATTERN.search(str(path))
    if match is None:
        raise ValueError(
            f"`path` {str(path)!r} does not end in _T<temperature>.npy, as "
            "ising_L40_T2.25.npy does."
        )
    return float(match.group(1))
