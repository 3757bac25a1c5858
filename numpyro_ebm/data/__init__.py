"""Data readers: IDX (MNIST) files and scikit-learn's digits."""

from numpyro_ebm.data.digits import load_binary_digits
from numpyro_ebm.data.idx import DATA_DIR_VARIABLE, load_mnist, read_idx

__all__ = ["DATA_DIR_VARIABLE", "load_binary_digits", "load_mnist", "read_idx"]
