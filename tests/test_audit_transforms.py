"""Transform table for geomtax.audit's JAX entry points: jit vs eager, vmap, grad, no retrace.

The other public names of geomtax.audit are host-side (file I/O, string sequences, reports) and
are listed in HOST_SIDE; the last test fails if a public callable is in neither table.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import geomtax.audit as ga

JAX_FUNCS = {
    "predictive_entropy": lambda z: ga.predictive_entropy(z),
    "kl_to_uniform": lambda z: ga.kl_to_uniform(z),
    "ensemble_jsd": lambda z: ga.ensemble_jsd(jnp.stack([z, 2 * z, -z])),
    # Members kept clearly apart: near-identical rows put sqrt(JSD) where float noise dominates.
    "js_distance": lambda z: ga.js_distance(
        z, z + jnp.broadcast_to(jnp.arange(z.shape[-1], dtype=z.dtype), z.shape)
    ),
    "pairwise_js_distance": lambda z: ga.pairwise_js_distance(
        jnp.stack([z, z + jnp.broadcast_to(jnp.arange(z.shape[-1], dtype=z.dtype), z.shape)])
    ),
}

HOST_SIDE = {
    "AuditReport",
    "ModelEmbeddings",
    "RCTextureReport",
    "RegimeThresholds",
    "classify_regimes",
    "dinucleotide_shuffle",
    "dna_features",
    "embed_sequences",
    "filter_rows",
    "fisher_by_layer",
    "fisher_shares",
    "fit_markov",
    "huggingface_embed_fn",
    "kmer_counts",
    "kmer_embedder",
    "kmer_frequencies",
    "load_embeddings",
    "load_labels",
    "markov_dna",
    "member_embedding_stability",
    "motif_shift",
    "perplexity_from_nll",
    "plot_fisher_shares",
    "plot_mi_distortion_map",
    "plot_perturbation_stability",
    "pool_embeddings",
    "position_sensitive_embedder",
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
}


@pytest.mark.parametrize("name", sorted(JAX_FUNCS))
def test_jit_matches_eager_and_vmap(name, getkey):
    fn = JAX_FUNCS[name]
    z = jax.random.normal(getkey(), (4, 6))
    eager = fn(z)
    with jax.disable_jit():
        no_jit = fn(z)
    np.testing.assert_allclose(eager, no_jit, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jax.jit(fn)(z), eager, rtol=1e-5, atol=1e-6)
    zs = jax.random.normal(getkey(), (3, 4, 6))
    batched = jax.vmap(fn)(zs)
    for i in range(3):
        np.testing.assert_allclose(batched[i], fn(zs[i]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["predictive_entropy", "kl_to_uniform", "ensemble_jsd"])
def test_grad_matches_finite_differences(name, getkey, x64):
    fn = JAX_FUNCS[name]
    z = jax.random.normal(getkey(), (2, 5), dtype=jnp.float64)
    check_grads(lambda v: jnp.sum(fn(v)), (z,), order=1, modes=("rev",), atol=1e-5, rtol=1e-5)


def test_no_retrace_on_new_values(getkey):
    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def entropy_sum(z):
        return jnp.sum(ga.predictive_entropy(z)) + jnp.sum(ga.ensemble_jsd(jnp.stack([z, -z])))

    entropy_sum(jax.random.normal(getkey(), (3, 7)))
    entropy_sum(jax.random.normal(getkey(), (3, 7)))  # same shapes, new values: no retrace


def test_empirical_fisher_jit_vmap_and_cache(getkey):
    def ll(p, x, y):
        return -0.5 * (y - x @ p["w"]) ** 2

    x = jax.random.normal(getkey(), (12, 3))
    y = jax.random.normal(getkey(), (12,))
    p = {"w": jax.random.normal(getkey(), (3,))}
    ref = ga.empirical_fisher(ll, p, x, y)
    with jax.disable_jit():
        eager = ga.empirical_fisher(ll, p, x, y)
    np.testing.assert_allclose(ref["w"], eager["w"], rtol=1e-5)
    # vmap over a batch of parameter settings (a sweep) matches separate calls.
    ws = jax.random.normal(getkey(), (4, 3))
    swept = jax.vmap(lambda w: ga.empirical_fisher(ll, {"w": w}, x, y)["w"])(ws)
    for i in range(4):
        np.testing.assert_allclose(
            swept[i], ga.empirical_fisher(ll, {"w": ws[i]}, x, y)["w"], rtol=1e-5
        )
    # Second call with new values and the same shapes reuses the compiled program: the
    # log-likelihood (a static argument) is traced only by the first call.
    traces = []

    def ll_counted(p, x, y):
        traces.append(1)
        return ll(p, x, y)

    ga.empirical_fisher(ll_counted, p, x, y)
    n_first = len(traces)
    ga.empirical_fisher(ll_counted, {"w": p["w"] + 1.0}, x + 1.0, y * 2.0)
    assert n_first >= 1 and len(traces) == n_first


def test_every_public_callable_has_a_row():
    public = {n for n in ga.__all__ if callable(getattr(ga, n))}
    missing = public - set(JAX_FUNCS) - HOST_SIDE - {"empirical_fisher"}
    assert not missing, f"add a transform row or HOST_SIDE entry for {sorted(missing)}"
