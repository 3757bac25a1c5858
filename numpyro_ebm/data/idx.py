"""Reader for the IDX format of the MNIST files, gzip-compressed or not."""

import gzip
import os
from pathlib import Path

import numpy as np

# IDX header: two zero bytes, a type code, the number of dimensions, then one
# big-endian int32 per dimension (LeCun, Cortes & Burges, the MNIST database page).
_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
DATA_DIR_VARIABLE = "NUMPYRO_EBM_DATA"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (``.gz`` files are decompressed) into a NumPy array.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the header is not a valid IDX header or the payload has the wrong size.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file: invalid header {raw[:4]!r}.")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    shape = tuple(np.frombuffer(raw, dtype=">i4", count=ndim, offset=4).tolist())
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise ValueError(
            f"{path} has {len(raw) - offset} payload bytes; its header {shape} "
            f"needs {expected}."
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=offset)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def load_mnist(
    folder: str | os.PathLike | None = None, *, threshold: float | None = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Load the MNIST test digits ``t10k-*-idx*-ubyte.gz`` from ``folder``.

    Parameters
    ----------
    folder
        Folder with the two files. Defaults to ``$NUMPYRO_EBM_DATA/mnist``.
    threshold
        Binarise intensities/255 at this value (``x >= threshold``); ``None``
        returns intensities scaled to [0, 1].

    Returns
    -------
    tuple
        Images of shape ``(10000, 784)`` (``uint8`` when binarised, else
        ``float32``) and labels of shape ``(10000,)``.
    """
    if folder is None:
        root = os.environ.get(DATA_DIR_VARIABLE)
        if root is None:
            raise ValueError(
                f"`folder` is not given and ${DATA_DIR_VARIABLE} is not set; pass the "
                "folder that holds t10k-images-idx3-ubyte.gz."
            )
        folder = Path(root) / "mnist"
    folder = Path(folder)
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    scaled = images.reshape(images.shape[0], -1).astype(np.float32) / 255.0
    if threshold is None:
        return scaled, labels
    return (scaled >= threshold).astype(np.uint8), labels
