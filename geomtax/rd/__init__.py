"""Rate–distortion: k-means quantization, Blahut–Arimoto R(D) curves and capacity scaling fits.

Every estimator returns a result with a ``status`` (:class:`geomtax.Status`) and takes
``throw: bool = True``; an unconverged Blahut–Arimoto point (``not_converged``) keeps its
certified bounds. See ``docs/api/rd.md`` and ``docs/reference/rate-distortion.md`` for every
formula and convention.
"""

from ._blahut_arimoto import RDCurve as RDCurve
from ._blahut_arimoto import RDSolution as RDSolution
from ._blahut_arimoto import blahut_arimoto as blahut_arimoto
from ._blahut_arimoto import rd_curve as rd_curve
from ._kmeans import KMeansResult as KMeansResult
from ._kmeans import kmeans as kmeans
from ._samples import quantize_for_rd as quantize_for_rd
from ._samples import rd_curve_from_samples as rd_curve_from_samples
from ._scaling import IntrinsicDimensionResult as IntrinsicDimensionResult
from ._scaling import ScalingFit as ScalingFit
from ._scaling import capacity_scaling_fit as capacity_scaling_fit
from ._scaling import intrinsic_dimension as intrinsic_dimension
from ._scaling import shannon_lower_bound as shannon_lower_bound

__all__ = [
    "IntrinsicDimensionResult",
    "KMeansResult",
    "RDCurve",
    "RDSolution",
    "ScalingFit",
    "blahut_arimoto",
    "capacity_scaling_fit",
    "intrinsic_dimension",
    "kmeans",
    "quantize_for_rd",
    "rd_curve",
    "rd_curve_from_samples",
    "shannon_lower_bound",
]
