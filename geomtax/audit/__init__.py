"""Foundation-model audit: embeddings in, geometry / MI / R(D) / regimes out.

An outer namespace (it may use Flax and host-side I/O). Entry points: :func:`run` (the audit
over several models/layers, with JSON/CSV/HTML output), :func:`rc_texture_test` (the
reverse-complement texture test), the genomics utilities (features, perturbations, controls,
FASTA), pickle-free loaders, and the entropy / disagreement / Fisher diagnostics.
"""

from ._audit import AuditReport as AuditReport
from ._audit import ModelEmbeddings as ModelEmbeddings
from ._audit import run as run
from ._controls import dinucleotide_shuffle as dinucleotide_shuffle
from ._controls import fit_markov as fit_markov
from ._controls import markov_dna as markov_dna
from ._controls import motif_shift as motif_shift
from ._controls import protein_substitute as protein_substitute
from ._controls import random_dna as random_dna
from ._controls import snp_perturb as snp_perturb
from ._controls import strand_symmetric_dna as strand_symmetric_dna
from ._controls import texture_matched_dna as texture_matched_dna
from ._diagnostics import empirical_fisher as empirical_fisher
from ._diagnostics import ensemble_jsd as ensemble_jsd
from ._diagnostics import fisher_by_layer as fisher_by_layer
from ._diagnostics import fisher_shares as fisher_shares
from ._diagnostics import js_distance as js_distance
from ._diagnostics import kl_to_uniform as kl_to_uniform
from ._diagnostics import member_embedding_stability as member_embedding_stability
from ._diagnostics import pairwise_js_distance as pairwise_js_distance
from ._diagnostics import predictive_entropy as predictive_entropy
from ._embeddings import embed_sequences as embed_sequences
from ._embeddings import filter_rows as filter_rows
from ._embeddings import huggingface_embed_fn as huggingface_embed_fn
from ._embeddings import pool_embeddings as pool_embeddings
from ._genomics import CTCF_MOTIF as CTCF_MOTIF
from ._genomics import DINUCLEOTIDES as DINUCLEOTIDES
from ._genomics import DNA_ALPHABET as DNA_ALPHABET
from ._genomics import DNA_FEATURE_NAMES as DNA_FEATURE_NAMES
from ._genomics import KYTE_DOOLITTLE as KYTE_DOOLITTLE
from ._genomics import PROTEIN_ALPHABET as PROTEIN_ALPHABET
from ._genomics import PROTEIN_FEATURE_NAMES as PROTEIN_FEATURE_NAMES
from ._genomics import dna_features as dna_features
from ._genomics import kmer_counts as kmer_counts
from ._genomics import kmer_frequencies as kmer_frequencies
from ._genomics import protein_features as protein_features
from ._genomics import read_fasta as read_fasta
from ._genomics import reverse_complement as reverse_complement
from ._genomics import reverse_sequences as reverse_sequences
from ._genomics import rng_from_key as rng_from_key
from ._genomics import validate_sequences as validate_sequences
from ._loaders import load_embeddings as load_embeddings
from ._loaders import load_labels as load_labels
from ._rc_test import RCTextureReport as RCTextureReport
from ._rc_test import kmer_embedder as kmer_embedder
from ._rc_test import position_sensitive_embedder as position_sensitive_embedder
from ._rc_test import rc_invariant_embedder as rc_invariant_embedder
from ._rc_test import rc_texture_test as rc_texture_test
from ._regimes import RegimeThresholds as RegimeThresholds
from ._regimes import classify_regimes as classify_regimes
from ._regimes import perplexity_from_nll as perplexity_from_nll
from ._report import plot_fisher_shares as plot_fisher_shares
from ._report import plot_mi_distortion_map as plot_mi_distortion_map
from ._report import plot_perturbation_stability as plot_perturbation_stability
from ._report import render_html as render_html

__all__ = [
    "AuditReport",
    "CTCF_MOTIF",
    "DINUCLEOTIDES",
    "DNA_ALPHABET",
    "DNA_FEATURE_NAMES",
    "KYTE_DOOLITTLE",
    "ModelEmbeddings",
    "PROTEIN_ALPHABET",
    "PROTEIN_FEATURE_NAMES",
    "RCTextureReport",
    "RegimeThresholds",
    "classify_regimes",
    "dinucleotide_shuffle",
    "dna_features",
    "embed_sequences",
    "empirical_fisher",
    "ensemble_jsd",
    "filter_rows",
    "fisher_by_layer",
    "fisher_shares",
    "fit_markov",
    "huggingface_embed_fn",
    "js_distance",
    "kl_to_uniform",
    "kmer_counts",
    "kmer_embedder",
    "kmer_frequencies",
    "load_embeddings",
    "load_labels",
    "markov_dna",
    "member_embedding_stability",
    "motif_shift",
    "pairwise_js_distance",
    "perplexity_from_nll",
    "plot_fisher_shares",
    "plot_mi_distortion_map",
    "plot_perturbation_stability",
    "pool_embeddings",
    "position_sensitive_embedder",
    "predictive_entropy",
    "protein_features",
    "protein_substitute",
    "random_dna",
    "rc_invariant_embedder",
    "rc_texture_test",
    "read_fasta",
    "render_html",
    "reverse_complement",
    "reverse_sequences",
    "rng_from_key",
    "run",
    "snp_perturb",
    "strand_symmetric_dna",
    "texture_matched_dna",
    "validate_sequences",
]
