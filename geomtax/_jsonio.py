"""One JSON sanitiser for every record geomtax writes (audit reports, regime tables, sweeps)."""

import math
from typing import Any

import numpy as np


def jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON values (JSON has no non-finite numbers).

    Dict keys become strings, tuples and arrays lists, NumPy scalars Python numbers, and
    NaN / inf ``None``.

    Examples:
        >>> jsonable({"a": (np.float32(1.5), float("nan")), 2: np.arange(2)})
        {'a': [1.5, None], '2': [0, 1]}
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
