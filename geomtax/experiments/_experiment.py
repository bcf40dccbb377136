"""What an ablation experiment declares: its cells and its summary table.

Optionally also its preset values and figures. A *cell* is one model trained from scratch and
evaluated (:class:`Cell`); an *experiment* (:class:`Experiment`) says which cells it needs for
one system and seed and how its table is computed from the finished cells' records. Training,
evaluation and records are shared (``_run.py``, ``_evaluate.py``, ``_records.py``); each
built-in experiment is one small module in ``geomtax/experiments/_builtin/``.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import equinox as eqx
import numpy as np

if TYPE_CHECKING:
    from ._config import AblationConfig

#: The two heads compared on an identical encoder.
HEADS = ("ce", "mse")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One trained model: where it sits in which experiment(s).

    Attributes:
        system: system name (``geomtax.dynamics.registered_systems()``).
        architecture: encoder architecture.
        head: ``"ce"`` or ``"mse"``.
        seed: integer seed of the replicate (data, initialisation, training).
        tokenizer: ``"uniform"`` or ``"kmeans"``.
        num_codes: codebook size for ``"kmeans"``.
        jacobian_lambda: weight of the Jacobian penalty (0 = off).
        num_layers: encoder layers (0 = the base encoder's).
        attention_layers: attention layers of StripedHyena (``None`` = the base encoder's).
        hyena_order: Hyena filter order (0 = the base encoder's).
        overrides: further ``EncoderConfig`` fields as ``((name, value), ...)``, applied last
            (what a new experiment varies when no field above fits; ``()`` = none).
    """

    system: str
    architecture: str
    head: str
    seed: int
    tokenizer: str = "uniform"
    num_codes: int = 0
    jacobian_lambda: float = 0.0
    num_layers: int = 0
    attention_layers: tuple[int, ...] | None = None
    hyena_order: int = 0
    overrides: tuple[tuple[str, Any], ...] = ()

    @property
    def cell_id(self) -> str:
        """Stable, filesystem-safe identifier."""
        parts = [self.system, self.architecture, self.head, f"s{self.seed}"]
        if self.tokenizer == "kmeans":
            parts.append(f"K{self.num_codes}")
        if self.jacobian_lambda:
            parts.append(f"jac{self.jacobian_lambda:g}")
        if self.num_layers:
            parts.append(f"L{self.num_layers}")
        if self.attention_layers is not None:
            parts.append("attn" + "-".join(map(str, self.attention_layers)))
        if self.hyena_order:
            parts.append(f"order{self.hyena_order}")
        for name, value in self.overrides:
            parts.append(f"{name}{value:g}" if isinstance(value, float) else f"{name}{value}")
        return "_".join(parts)


class Experiment(eqx.Module):
    """One ablation experiment, declared on top of the shared training and evaluation code.

    A subclass sets ``name``, implements :meth:`cells` and :meth:`summarize`, and may set
    ``presets`` and override :meth:`figures`. Settings of a new experiment are fields of the
    subclass (static, so they are part of the run's fingerprint); the built-in ones read theirs
    from :class:`AblationConfig`. Register an instance with :func:`register_experiment` (or add
    it to ``_builtin/__init__.py``); ``geomtax ablation --experiments NAME`` then runs it.

    Attributes:
        name: the experiment's name (``AblationConfig.experiments``, ``--experiments``).
        presets: ``{preset: {AblationConfig field: value}}``, the experiment's own values of
            the named presets (built-in experiments only; a new one keeps its settings as
            fields).

    Examples:
        >>> from geomtax.experiments import Cell, Experiment
        >>> class Depth(Experiment):
        ...     name = "depth"
        ...     def cells(self, config, system, seed):
        ...         return [Cell(system, "lstm", "ce", seed, num_layers=n) for n in (1, 2)]
        ...     def summarize(self, config, records, system):
        ...         return [{"system": system, "cells": len(records)}]
        >>> [c.cell_id for c in Depth().cells(None, "lorenz", 320)]
        ['lorenz_lstm_ce_s320_L1', 'lorenz_lstm_ce_s320_L2']
    """

    name: ClassVar[str]
    presets: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    @abc.abstractmethod
    def cells(self, config: AblationConfig, system: str, seed: int) -> list[Cell]:
        """The cells of this experiment for one system and seed, in run order."""

    @abc.abstractmethod
    def summarize(
        self, config: AblationConfig, records: list[dict[str, Any]], system: str
    ) -> list[dict[str, Any]]:
        """Summary rows of one system from the records of this experiment's cells."""

    def figures(
        self, out: Path, rows: list[dict[str, Any]], records: list[dict[str, Any]]
    ) -> list[Path]:
        """Write this experiment's figures into ``out``; return their paths (default none)."""
        return []

    def settings(self) -> dict[str, Any]:
        """The experiment's own settings (its fields), added to the run's fingerprint."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


# ---------------------------------------------------------------------------------------------
# helpers for summaries


def select(records: Sequence[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    """The records whose fields equal every ``match`` value."""
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]


def mean(records: Sequence[dict[str, Any]], field: str = "distortion") -> float:
    """Mean of ``field`` over ``records`` (over seeds); NaN when none has it."""
    vals = [r[field] for r in records if r.get(field) is not None]
    return float(np.mean(vals)) if vals else math.nan
