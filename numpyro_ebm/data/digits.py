"""scikit-learn's 8×8 digits, binarised, with a fixed train/test split."""

import numpy as np


def load_binary_digits(
    *, threshold: int = 8, test_size: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Load the 1797 digits of ``sklearn.datasets.load_digits`` as binary images.

    Pixel intensities range over 0–16 and a pixel is on when it is at least
    ``threshold``. The split is stratified by label and fixed by ``seed``.

    Returns
    -------
    tuple
        ``train_images, test_images, train_labels, test_labels``; images are
        ``float32`` arrays of shape ``(count, 64)``.
    """
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the digits data ship with scikit-learn: pip install 'numpyro_ebm[examples]'"
        ) from error
    digits = load_digits()
    images = (digits.data >= threshold).astype(np.float32)
    return tuple(
        train_test_split(
            images,
            digits.target,
            test_size=test_size,
            random_state=seed,
            stratify=digits.target,
        )
    )
