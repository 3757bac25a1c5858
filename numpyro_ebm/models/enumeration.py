"""Enumeration of every configuration of discrete sites, in chunks of integer codes."""

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from numpyro_ebm.models.sites import Site
from numpyro_ebm.types import Array


def num_configurations(sites: Sequence[Site]) -> int:
    """Return the number of joint configurations of discrete ``sites``."""
    total = 1
    for site in sites:
        if not site.is_discrete:
            raise ValueError(
                f"site `{site.name}` is real-valued and cannot be enumerated; "
                "exact enumeration needs discrete sites (binary, spin or categorical)."
            )
        total *= len(site.domain) ** site.size
    return total


def decode_configurations(sites: Sequence[Site], codes: Array) -> dict[str, Array]:
    """Map integer codes to configurations, one row per code.

    The code is read as a mixed-radix number whose least significant digit is
    the last element of the last site, so that codes ``0, 1, ...`` visit the
    configurations in lexicographic order of their domain indices.

    Parameters
    ----------
    sites
        Discrete sites to decode.
    codes
        Integer array of shape ``(n,)`` with values in ``[0, num_configurations)``.

    Returns
    -------
    dict
        Site name to values of shape ``(n, *site.shape)``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from numpyro_ebm.models.sites import Site
    >>> site = Site("v", (2,), (0.0, 1.0))
    >>> decode_configurations([site], jnp.arange(4))["v"].tolist()
    [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
    """
    num_configurations(sites)  # raises for real-valued sites
    remaining = codes
    values = {}
    for site in reversed(sites):
        q = len(site.domain)
        powers = q ** np.arange(site.size - 1, -1, -1, dtype=np.int64)
        total = q**site.size
        local = remaining % total
        remaining = remaining // total
        digits = (local[:, None] // jnp.asarray(powers, local.dtype)) % q
        domain = jnp.asarray(site.domain)
        values[site.name] = domain[digits].reshape((codes.shape[0],) + site.shape)
    return {site.name: values[site.name] for site in sites}


def encode_configurations(sites: Sequence[Site], x: dict[str, Array]) -> Array:
    """Map configurations to their integer codes; the inverse of :func:`decode_configurations`.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from numpyro_ebm.models.sites import Site
    >>> site = Site("v", (2,), (0.0, 1.0))
    >>> encode_configurations([site], {"v": jnp.array([[1.0, 0.0], [1.0, 1.0]])}).tolist()
    [2, 3]
    """
    num_configurations(sites)  # raises for real-valued sites
    codes = None
    for site in sites:
        q = len(site.domain)
        values = x[site.name].reshape(x[site.name].shape[0], -1)
        digits = jnp.argmax(values[..., None] == jnp.asarray(site.domain), axis=-1)
        for column in range(site.size):
            digit = digits[:, column].astype(jnp.int32)
            codes = digit if codes is None else codes * q + digit
    return codes
