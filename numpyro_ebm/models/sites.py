"""Description of the random variables x of an energy model."""

from typing import NamedTuple

import numpy as np

BINARY = (0.0, 1.0)
SPIN = (-1.0, 1.0)


class Site(NamedTuple):
    """A random variable x of an energy model, for one example.

    Attributes
    ----------
    name
        Site name; for models written in NumPyro syntax, the name of the
        ``numpyro.sample`` site.
    shape
        Shape of one example's value, without the batch axis.
    domain
        The finite set of values each element takes (for example ``(0.0, 1.0)``
        for binary units or ``(0, 1, ..., q - 1)`` for a categorical variable),
        or ``None`` for real-valued elements.
    """

    name: str
    shape: tuple[int, ...]
    domain: tuple[float, ...] | tuple[int, ...] | None

    @property
    def size(self) -> int:
        """Number of scalar elements in one example's value."""
        return int(np.prod(self.shape, dtype=int))

    @property
    def is_discrete(self) -> bool:
        """Whether every element takes values in a finite domain."""
        return self.domain is not None

    @property
    def is_categorical(self) -> bool:
        """Whether the domain is the integers ``0, ..., q - 1`` stored as integers."""
        return self.domain is not None and all(isinstance(v, int) for v in self.domain)
