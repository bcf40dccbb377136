"""Failure-regime classification of an audited model (docs/reference/audit.md#failure-regimes).

The paper's thresholds are not public, so every cut-off is a field of :class:`RegimeThresholds`
and every verdict carries the numbers it was decided on.

* **I. Local-Global Decoupling** (window-level statistics captured, whole-sequence structure
  lost): ``MI_local > floor`` and (``MI_global <= floor`` or
  ``MI_local / MI_global >= decoupling_ratio_min``).
* **II. Representational Compression** (a module raises MI while destroying geometry), for a
  model with an upstream model (e.g. Evoformer fed by ESM-1b): ``MI - MI_upstream > delta_mi_min``
  and Procrustes disparity(upstream, model) ``>= disparity_min``.
* **III. Geometric Vacuity** (smooth embeddings, little information): ``MI_global <= floor`` and
  perplexity ``< perplexity_max`` (perplexity = exp(mean token NLL in nats)).

A regime whose inputs are missing is reported as ``evaluated=False`` rather than guessed.
"""

from __future__ import annotations

import math

import equinox as eqx

from ._metrics import geometry_lost, in_range, value_range

REGIMES = ("local_global_decoupling", "representational_compression", "geometric_vacuity")
#: the geometry metric of regime II (its range and direction come from the metric table)
_DISPARITY = "procrustes_disparity"
REGIME_LABELS = {
    "local_global_decoupling": "I. Local-Global Decoupling",
    "representational_compression": "II. Representational Compression",
    "geometric_vacuity": "III. Geometric Vacuity",
}


class RegimeThresholds(eqx.Module):
    """Cut-offs of the regime rules (all documented placeholders; the paper's are not public).

    Attributes:
        decoupling_ratio_min: regime I needs ``MI_local / MI_global >= this`` when the global
            MI is above the floor (default 2.0).
        delta_mi_min: regime II needs ``MI - MI_upstream > this`` nats (default 0.0).
        disparity_min: regime II needs Procrustes disparity ``>= this`` (default 0.5).
        perplexity_max: regime III needs perplexity ``< this`` (default 50, reference).
    """

    decoupling_ratio_min: float = 2.0
    delta_mi_min: float = 0.0
    disparity_min: float = 0.5
    perplexity_max: float = 50.0

    def __check_init__(self):
        if not self.decoupling_ratio_min > 0:
            raise ValueError(f"decoupling_ratio_min must be > 0, got {self.decoupling_ratio_min}")
        if not in_range(_DISPARITY, self.disparity_min):
            lo, hi = value_range(_DISPARITY)
            raise ValueError(f"disparity_min must be in [{lo:g}, {hi:g}], got {self.disparity_min}")
        if not self.perplexity_max > 0:
            raise ValueError(f"perplexity_max must be > 0, got {self.perplexity_max}")


def _not_evaluated(reason: str) -> dict:
    """The evidence of a regime whose inputs are missing."""
    return {"flagged": False, "evaluated": False, "reason": reason}


def _num(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def classify_regimes(
    *,
    mi_global: float,
    floor: float,
    mi_local: float | None = None,
    mi_upstream: float | None = None,
    disparity_upstream: float | None = None,
    perplexity: float | None = None,
    thresholds: RegimeThresholds = RegimeThresholds(),
) -> dict:
    """Apply the three regime rules to one model's numbers.

    Args:
        mi_global: MI (nats) between ground-truth features and globally pooled embeddings.
        floor: the MI noise floor (nats): random-embedding baseline mean + 2 std.
        mi_local: mean MI over local windows (nats), if measured.
        mi_upstream: MI of the upstream model (nats), for regime II.
        disparity_upstream: Procrustes disparity between upstream and this model's embeddings.
        perplexity: the model's perplexity on its own tokens, for regime III.
        thresholds: :class:`RegimeThresholds`.

    Returns:
        ``{"regimes": [names flagged], "label": "..."|"none", "evidence": {regime: {...}}}``;
        each evidence entry has ``flagged``, ``evaluated``, the inputs and a one-line ``reason``.

    Examples:
        >>> out = classify_regimes(mi_global=0.01, floor=0.05, mi_local=0.4)
        >>> out["regimes"]
        ['local_global_decoupling']
    """
    t = thresholds
    g, f = _num(mi_global), _num(floor)
    if g is None or f is None:
        raise ValueError(f"mi_global and floor must be finite numbers, got {mi_global}, {floor}")
    evidence = {}

    loc = _num(mi_local)
    if loc is None:
        evidence["local_global_decoupling"] = _not_evaluated("no local-window MI measured")
    else:
        ratio = loc / g if g > 0 else math.inf
        flagged = loc > f and (g <= f or ratio >= t.decoupling_ratio_min)
        evidence["local_global_decoupling"] = {
            "flagged": bool(flagged),
            "evaluated": True,
            "mi_local_nats": loc,
            "mi_global_nats": g,
            "floor_nats": f,
            "local_global_ratio": ratio,
            "decoupling_ratio_min": t.decoupling_ratio_min,
            "reason": (
                f"MI_local={loc:.3g} {'>' if loc > f else '<='} floor={f:.3g}; "
                f"MI_global={g:.3g} {'<=' if g <= f else '>'} floor; "
                f"ratio={ratio:.3g} vs {t.decoupling_ratio_min:g}"
            ),
        }

    up, disp = _num(mi_upstream), _num(disparity_upstream)
    if up is None or disp is None:
        evidence["representational_compression"] = _not_evaluated("no upstream model given")
    else:
        delta = g - up
        flagged = delta > t.delta_mi_min and geometry_lost(_DISPARITY, disp, t.disparity_min)
        evidence["representational_compression"] = {
            "flagged": bool(flagged),
            "evaluated": True,
            "delta_mi_nats": delta,
            "disparity": disp,
            "delta_mi_min": t.delta_mi_min,
            "disparity_min": t.disparity_min,
            "reason": (
                f"dMI={delta:.3g} vs {t.delta_mi_min:g}; disparity={disp:.3g} vs "
                f"{t.disparity_min:g}"
            ),
        }

    ppl = _num(perplexity)
    if ppl is None:
        evidence["geometric_vacuity"] = _not_evaluated("no perplexity given")
    else:
        flagged = g <= f and ppl < t.perplexity_max
        evidence["geometric_vacuity"] = {
            "flagged": bool(flagged),
            "evaluated": True,
            "mi_global_nats": g,
            "floor_nats": f,
            "perplexity": ppl,
            "perplexity_max": t.perplexity_max,
            "reason": (
                f"MI_global={g:.3g} {'<=' if g <= f else '>'} floor={f:.3g}; "
                f"perplexity={ppl:.3g} vs {t.perplexity_max:g}"
            ),
        }
    flagged = [r for r in REGIMES if evidence[r]["flagged"]]
    return {
        "regimes": flagged,
        "label": " + ".join(REGIME_LABELS[r] for r in flagged) if flagged else "none",
        "evidence": evidence,
    }


def perplexity_from_nll(token_nll_nats) -> float:
    """Perplexity ``exp(mean token NLL)`` from per-token negative log-likelihoods in nats.

    Examples:
        >>> round(perplexity_from_nll([1.0, 1.0]), 4)
        2.7183
    """
    import numpy as np

    nll = np.asarray(token_nll_nats, dtype=np.float64).ravel()
    if nll.size == 0 or not np.isfinite(nll).all():
        raise ValueError("token_nll_nats must be a non-empty array of finite values")
    return float(np.exp(nll.mean()))
