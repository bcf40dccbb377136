"""One result contract for the whole library: a status enum, a result base and ``throw``.

Every estimator in ``geometry``, ``info``, ``rd`` and ``audit`` returns an ``eqx.Module`` result
holding its value fields, its diagnostics and a ``status`` drawn from :class:`Status` (an
``eqx.Enumeration``, so it is an array leaf: it survives ``jit``, batches under ``vmap`` and
costs nothing to carry). ``throw`` means the same on every function that can fail at run time:

* ``throw=True`` (the default): a result whose status is not ``ok`` raises
  :class:`StatusError` with one line naming the function, the status and what it means. When the
  call is eager (the usual case) the check runs on the host after the computation. Inside a
  user's ``jit``/``vmap`` the check is an ``eqx.branched_error_if`` carrying the same line.
* ``throw=False``: the result is returned whatever its status, under ``jit`` as well; nothing
  aborts. Use it in sweeps and training loops and read ``result.status``.

Precedence when several problems occur at once (the first applies): ``nonfinite_input``,
``degenerate_input``, ``diverged``, ``not_converged``, ``implausible``. A result whose status is
not ``ok`` has ``value`` set to NaN unless its docstring says what the value still means (an
unconverged Blahut–Arimoto point keeps its certified bounds, for example).

The degenerate-input rule (docs/concepts/status.md) is the same everywhere: an input is
*degenerate* for an estimator when the quantity the estimator defines is 0/0 on it (every row
identical, a zero-variance column set where a correlation needs variance, fewer distinct rows
than the estimator needs neighbours, ties at a zero k-NN radius). Such inputs give NaN with
``degenerate_input``; they never give a conventional number such as 0.0 or 1.0.
"""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

__all__ = [
    "AbstractResult",
    "Estimate",
    "Status",
    "StatusError",
    "status_name",
]


class Status(eqx.Enumeration):
    """The status of an estimate; one enum shared by every estimator in geomtax.

    Codes (value, then message):

    * ``ok``: within the estimator's documented accuracy.
    * ``nonfinite_input``: an input holds NaN or inf; the value is NaN.
    * ``degenerate_input``: the estimator is undefined on this input (constant data,
      zero variance, too few distinct rows, ties at a zero radius); the value is NaN.
    * ``diverged``: an optimisation produced non-finite values; the value is NaN.
    * ``not_converged``: an iterative solver or fit stopped at its step limit before its
      tolerance (for a neural MI fit: while its training and held-out estimates still rose).
    * ``implausible``: the estimate fails a plausibility check that the estimate itself
      reveals (a value the bound cannot take, held-out and training estimates that disagree,
      an unstable training tail, an InfoNCE estimate at its log-batch ceiling).
    """

    ok = "the estimate is within its documented accuracy"
    nonfinite_input = "an input contains NaN or inf"
    degenerate_input = (
        "the estimator is undefined on this input (constant data, zero variance, too few "
        "distinct rows or ties at a zero radius)"
    )
    diverged = "the optimisation produced non-finite values"
    not_converged = (
        "the iterative solver or fit stopped at its step limit before reaching its tolerance "
        "(or while its estimate was still rising)"
    )
    implausible = "the estimate failed a plausibility check and is not to be trusted"


#: Status names in index order (``Status.<name>._value`` is the position here).
STATUS_NAMES: tuple[str, ...] = tuple(
    sorted(Status._name_to_item, key=lambda n: int(Status._name_to_item[n]._value))
)
#: Precedence used by :func:`select` callers: earlier names win.
PRECEDENCE: tuple[str, ...] = (
    "nonfinite_input",
    "degenerate_input",
    "diverged",
    "not_converged",
    "implausible",
)


def status_name(status) -> str | np.ndarray:
    """The name of a concrete status (a ``str``), or an array of names for a batched one.

    Raises:
        TypeError: if ``status`` is traced (names exist only outside ``jit``).
    """
    if not isinstance(status, eqx._enum.EnumerationItem) or status._enumeration is not Status:
        raise TypeError(f"expected a geomtax Status, got {type(status).__name__}")
    if isinstance(status._value, jax.core.Tracer):
        raise TypeError("status_name needs a concrete status; call it outside jit/vmap")
    idx = np.asarray(status._value)
    if idx.ndim == 0:
        return STATUS_NAMES[int(idx)]
    return np.asarray(STATUS_NAMES, dtype=object)[idx]


def _item(value):
    return eqx._enum.EnumerationItem(value, Status)


def where(pred, a, b):
    """``a`` where ``pred`` else ``b``, for batched predicates too (``Status.where`` is scalar)."""
    pred = jnp.asarray(pred)
    return _item(jnp.where(pred, jnp.asarray(a._value), jnp.asarray(b._value)))


def ok_status(shape: tuple[int, ...] = ()):
    """``Status.ok`` as an int32 array leaf of ``shape`` (results vmap and jit uniformly)."""
    return _item(jnp.full(shape, int(Status.ok._value), dtype=jnp.int32))


def select(*conditions: tuple, default=None):
    """The first status whose condition holds, else ``default`` (``Status.ok``).

    Args:
        conditions: ``(bool array, Status item)`` pairs in precedence order (earliest wins);
            conditions may be batched, and broadcast against one another.
        default: the status when no condition holds.

    Returns:
        A ``Status`` item with an array value (traceable).
    """
    out = ok_status() if default is None else default
    for cond, item in reversed(conditions):
        out = where(cond, item, out)
    return out


def worst(*statuses):
    """Combine statuses: the one earliest in :data:`PRECEDENCE` wins (``ok`` only if all are)."""
    out = ok_status()
    for name in reversed(PRECEDENCE):
        item = Status._name_to_item[name]
        hit = jnp.zeros((), bool)
        for s in statuses:
            hit = hit | (jnp.asarray(s._value) == jnp.asarray(item._value))
        out = where(hit, item, out)
    return out


class StatusError(ValueError):
    """An estimate whose status is not ``ok``, raised by ``throw=True``.

    Attributes:
        function: the public function that produced the estimate.
        status: the status name (``"degenerate_input"``, ...).
    """

    def __init__(self, function: str, status: str, message: str):
        self.function = function
        self.status = status
        super().__init__(message)


def _line(function: str, name: str, detail: str = "") -> str:
    msg = Status._name_to_item[name]
    text = f"{function}: {name}: {Status[msg]}"
    if detail:
        text += f" ({detail})"
    return text + "; pass throw=False to receive the result with its status"


def finish(result, *, throw: bool, function: str, details: dict[str, str] | None = None):
    """Apply the library's ``throw`` rule to ``result`` (anything with a ``status`` field).

    Args:
        result: the estimator's result module.
        throw: raise on a non-``ok`` status (see the module docstring).
        function: the public function's name, quoted in the message.
        details: optional extra words per status name (e.g. which input was constant).

    Returns:
        ``result`` (under a user's ``jit`` with ``throw=True``, wrapped by the error check).
    """
    if not throw:
        return result
    details = details or {}
    status = result.status
    value = status._value
    if isinstance(value, jax.core.Tracer):
        msgs = tuple(_line(function, n, details.get(n, "")) for n in STATUS_NAMES)
        ok_idx = int(Status.ok._value)
        return eqx.branched_error_if(result, value != ok_idx, value, msgs)
    idx = np.asarray(value)
    bad = idx[idx != int(Status.ok._value)]
    if bad.size:
        # The first bad code by precedence (a batched result may hold several).
        names = {STATUS_NAMES[int(i)] for i in np.unique(bad)}
        name = next(n for n in PRECEDENCE if n in names)
        code = int(Status._name_to_item[name]._value)
        parts = [] if idx.ndim == 0 else [f"{int((idx == code).sum())} of {idx.size} entries"]
        if details.get(name):
            parts.append(details[name])
        raise StatusError(function, name, _line(function, name, "; ".join(parts)))
    return result


class AbstractResult(eqx.Module):
    """Base of every estimator result: value fields plus a :class:`Status` (arrays only)."""

    status: eqx.AbstractVar[object]

    @property
    def ok(self) -> Bool[Array, "..."]:
        """True where ``status`` is ``Status.ok``."""
        return self.status == Status.ok

    @property
    def status_name(self) -> str | np.ndarray:
        """The status as a name (concrete results only)."""
        return status_name(self.status)


class Estimate(AbstractResult):
    """A single-valued estimate and its status (the result of most one-number estimators).

    Attributes:
        value: the estimate (NaN unless ``status`` is ``ok``, except where the function's
            docstring says otherwise).
        status: a :class:`Status`.
    """

    value: Float[Array, "..."]
    status: object


def nan_unless_ok(value, status, keep: Sequence[str] = ()):
    """``value`` where ``status`` is ok (or one of ``keep``), NaN elsewhere."""
    good = status == Status.ok
    for name in keep:
        good = good | (status == Status._name_to_item[name])
    value = jnp.asarray(value)
    return jnp.where(good, value, jnp.full_like(value, jnp.nan))
