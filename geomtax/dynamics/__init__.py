"""geomtax.dynamics: synthetic systems (diffrax), tokenizers, perturbations and cached datasets.

Generators return :class:`Trajectories`; tokenizers are small fitted Equinox modules that save and
load without pickle; perturbations are keyed and vmappable; :func:`build_dataset` caches train/eval
splits on disk as ``.npz`` keyed by a hash of the configuration (docs/reference/systems.md).
"""

from ._dataset import Dataset as Dataset
from ._dataset import build_dataset as build_dataset
from ._perturb import codebook_noise as codebook_noise
from ._perturb import interpolate_tokens as interpolate_tokens
from ._perturb import time_reversal as time_reversal
from ._perturb import value_noise as value_noise
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
from ._tokenize import KMeansCodebook as KMeansCodebook
from ._tokenize import UniformBins as UniformBins
from ._tokenize import kmeans_codebook as kmeans_codebook
from ._tokenize import tokenize_uniform as tokenize_uniform
from ._tokenize import tokenize_uniform_ref as tokenize_uniform_ref
from ._tokenize import uniform_bins as uniform_bins

__all__ = [
    "Dataset",
    "build_dataset",
    "IntegrationResult",
    "KMeansCodebook",
    "UniformBins",
    "codebook_noise",
    "interpolate_tokens",
    "kmeans_codebook",
    "time_reversal",
    "tokenize_uniform",
    "tokenize_uniform_ref",
    "uniform_bins",
    "value_noise",
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
