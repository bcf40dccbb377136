"""geomtax.dynamics: synthetic systems (diffrax), tokenizers, perturbations and cached datasets.

Generators return :class:`Trajectories`; tokenizers are small fitted Equinox modules that save and
load without pickle; perturbations are keyed and vmappable; :func:`build_dataset` caches train/eval
splits on disk as ``.npz`` keyed by a hash of the configuration (REFERENCE section 3).
"""

from ._systems import IntegrationResult as IntegrationResult
from ._systems import System as System
from ._systems import Trajectories as Trajectories
from ._systems import coupled_lorenz as coupled_lorenz
from ._systems import damped_oscillator as damped_oscillator
from ._systems import generate as generate
from ._systems import integrate as integrate
from ._systems import lorenz as lorenz
from ._systems import register_system as register_system
from ._systems import registered_systems as registered_systems
from ._systems import simulate as simulate
from ._systems import waveform as waveform

__all__ = [
    "IntegrationResult",
    "System",
    "Trajectories",
    "coupled_lorenz",
    "damped_oscillator",
    "generate",
    "integrate",
    "lorenz",
    "register_system",
    "registered_systems",
    "simulate",
    "waveform",
]
