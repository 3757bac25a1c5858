"""Eager validation of data and configurations against a site's description."""

import jax.numpy as jnp
import numpy as np

from numpyro_ebm.models.sites import Site
from numpyro_ebm.types import Array, ArrayLike


def check_configuration(values: ArrayLike, site: Site, *, name: str = "data") -> Array:
    """Validate a batch of values of ``site`` and cast it to the site's dtype.

    Raises
    ------
    ValueError
        If the batch is empty, has the wrong shape, contains NaN or infinite
        values, or contains values outside the site's domain.
    TypeError
        If the values are not numeric.
    """
    array = np.asarray(values)
    label = f"`{name}`" if name == site.name else f"`{name}` (site `{site.name}`)"
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{label} must be a numeric or boolean array; got dtype {array.dtype}."
        )
    expected = site.shape
    if array.shape[1:] != expected or array.ndim != len(expected) + 1:
        hint = ""
        if array.size and array.size % site.size == 0 and array.shape != expected:
            hint = f" Reshape it with x.reshape(-1, {', '.join(map(str, expected))})."
        elif array.ndim == len(expected):
            hint = " For one example, add a leading batch axis: x[None]."
        raise ValueError(
            f"{label} must have shape (batch, {', '.join(map(str, expected))}); "
            f"got {array.shape}, so the number of features does not match the "
            f"model.{hint}"
        )
    if array.shape[0] == 0:
        raise ValueError(
            f"{label} is empty: it has shape {array.shape}; pass at least one example."
        )
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(
            f"{label} contains a non-finite value {array[tuple(bad)]} at index "
            f"{tuple(int(i) for i in bad)}; remove or impute such values first."
        )
    if site.domain is not None:
        allowed = np.asarray(site.domain, dtype=np.float64)
        # float32 data of a float64 domain value (for example 0.1) differ in the
        # last bits, so membership is tested to float32 precision.
        close = np.isclose(
            array.astype(np.float64)[..., None], allowed, rtol=1e-6, atol=1e-6
        )
        outside = ~close.any(axis=-1)
        if np.any(outside):
            bad = np.argwhere(outside)[0]
            raise ValueError(
                f"{label} contains the value {array[tuple(bad)]} at index "
                f"{tuple(int(i) for i in bad)}, outside the site's domain "
                f"{site.domain}; binarise or re-encode the data first (for "
                "example `(x >= threshold)` for binary units)."
            )
        # Snap each value to the domain value it matched, so that casting to the
        # site's dtype cannot truncate 0.9999999 to 0.
        array = allowed[np.argmax(close, axis=-1)]
    dtype = jnp.int32 if site.is_categorical else jnp.result_type(float)
    return jnp.asarray(array, dtype=dtype)


def check_weights(
    weights: ArrayLike | None, count: int, *, name: str = "weights"
) -> np.ndarray:
    """Validate per-example weights and return them as float64 (ones if None).

    Raises
    ------
    ValueError
        If the shape is not ``(count,)``, a weight is negative or non-finite,
        or the weights sum to zero.
    """
    if weights is None:
        return np.ones(count)
    array = np.asarray(weights)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"`{name}` must be a numeric array; got dtype {array.dtype}.")
    if array.shape != (count,):
        raise ValueError(
            f"`{name}` must have shape ({count},), one weight per example of "
            f"`data`; got shape {array.shape}."
        )
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        index = int(np.argwhere(~np.isfinite(array))[0, 0])
        raise ValueError(
            f"`{name}` contains the non-finite value {array[index]} at index "
            f"{index}; weights must be finite and non-negative."
        )
    if np.any(array < 0):
        index = int(np.argwhere(array < 0)[0, 0])
        raise ValueError(
            f"`{name}` contains the negative value {array[index]} at index "
            f"{index}; weights must be finite and non-negative."
        )
    total = array.sum()
    if total <= 0:
        raise ValueError(
            f"`{name}` sum to {total}; at least one weight must be positive."
        )
    return array
