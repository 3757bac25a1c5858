"""Type aliases used in public signatures."""

from collections.abc import Mapping
from typing import Any

import jax

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
PRNGKey = jax.Array
ArrayTree = Any
Params = Mapping[str, jax.Array]
Configuration = Mapping[str, jax.Array]
