"""The experiments ``geomtax ablation`` knows: the built-ins, then user registrations in order."""

from ._builtin import BUILTIN
from ._experiment import Experiment

_BUILTIN = {e.name: e for e in BUILTIN}
_REGISTRY: dict[str, Experiment] = {}

EXPERIMENTS: tuple[str, ...] = tuple(_BUILTIN)
"""Built-in experiments of ``geomtax ablation`` (docs/reference/models.md#ablations)."""


def register_experiment(experiment: Experiment, *, overwrite: bool = False) -> Experiment:
    """Add an experiment, so that ``AblationConfig(experiments=(name, ...))`` can run it.

    Args:
        experiment: an instance of an :class:`Experiment` subclass.
        overwrite: allow replacing an earlier registration of the same name.

    Returns:
        ``experiment``.

    Raises:
        TypeError: if ``experiment`` is not an :class:`Experiment`.
        ValueError: on a built-in name, or a name already registered without ``overwrite``.
    """
    if not isinstance(experiment, Experiment):
        raise TypeError(f"expected an Experiment instance, got {type(experiment).__name__}")
    name = getattr(experiment, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{type(experiment).__name__} needs a non-empty class attribute name")
    if name in _BUILTIN:
        raise ValueError(f"experiment {name!r} is built in; choose another name")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"experiment {name!r} is already registered; pass overwrite=True")
    _REGISTRY[name] = experiment
    return experiment


def registered_experiments() -> tuple[str, ...]:
    """Names of every experiment: the built-ins (``EXPERIMENTS``), then registrations in order.

    Examples:
        >>> from geomtax.experiments import registered_experiments
        >>> registered_experiments()[:2]
        ('head', 'architecture')
    """
    return (*_BUILTIN, *_REGISTRY)


def get_experiment(name: str) -> Experiment:
    """The declaration registered as ``name``.

    Raises:
        ValueError: on an unknown name.
    """
    if name in _BUILTIN:
        return _BUILTIN[name]
    if name in _REGISTRY:
        return _REGISTRY[name]
    raise ValueError(f"unknown experiment {name!r}; expected one of {registered_experiments()}")
