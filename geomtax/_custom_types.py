"""jaxtyping aliases shared by every namespace. Imports nothing from geomtax."""

from typing import TypeAlias

import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

#: n samples of dimension d, paired row by row when two are passed.
Samples: TypeAlias = Float[Array | np.ndarray, "n d"]
#: A scalar that may be a Python number or a 0-d array (kept as a leaf, so it can be vmapped).
ScalarLike: TypeAlias = float | int | Float[ArrayLike, ""]
#: A JAX PRNG key (new-style typed key or legacy uint32[2]).
KeyArray: TypeAlias = PRNGKeyArray
FloatScalar: TypeAlias = Float[Array, ""]
BoolScalar: TypeAlias = Bool[Array, ""]
IntScalar: TypeAlias = Int[Array, ""]

__all__ = [
    "Array",
    "ArrayLike",
    "Bool",
    "BoolScalar",
    "Float",
    "FloatScalar",
    "Int",
    "IntScalar",
    "KeyArray",
    "Samples",
    "ScalarLike",
]
