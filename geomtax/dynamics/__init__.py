"""geomtax.dynamics: synthetic systems (diffrax), tokenizers, perturbations and cached datasets.

Every system, built-in or registered, is a :class:`System` run by :func:`simulate` and named in
one registry (:func:`get_system`, :func:`registered_systems`, :func:`register_system`).
Generators return :class:`Trajectories`; tokenizers are small fitted Equinox modules that save and
load without pickle; perturbations are keyed and vmappable; :func:`build_dataset` caches train/eval
splits on disk as ``.npz`` keyed by a hash of the configuration (docs/reference/systems.md).
"""

from ._dataset import Dataset as Dataset
from ._dataset import build_dataset as build_dataset
from ._integrate import IntegrationResult as IntegrationResult
from ._integrate import integrate as integrate
from ._lorenz import coupled_lorenz as coupled_lorenz
from ._lorenz import lorenz as lorenz
from ._oscillator import damped_oscillator as damped_oscillator
from ._perturb import codebook_noise as codebook_noise
from ._perturb import interpolate_tokens as interpolate_tokens
from ._perturb import time_reversal as time_reversal
from ._perturb import value_noise as value_noise
from ._registry import generate as generate
from ._registry import get_system as get_system
from ._registry import register_system as register_system
from ._registry import registered_systems as registered_systems
from ._system import System as System
from ._system import Trajectories as Trajectories
from ._system import simulate as simulate
from ._tokenize import KMeansCodebook as KMeansCodebook
from ._tokenize import UniformBins as UniformBins
from ._tokenize import kmeans_codebook as kmeans_codebook
from ._tokenize import tokenize_uniform as tokenize_uniform
from ._tokenize import tokenize_uniform_ref as tokenize_uniform_ref
from ._tokenize import uniform_bins as uniform_bins
from ._waveform import waveform as waveform

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
    "get_system",
    "integrate",
    "lorenz",
    "register_system",
    "registered_systems",
    "simulate",
    "waveform",
]
