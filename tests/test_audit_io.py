"""Loaders (no pickle), pooling, row filtering and embed_fn batching."""

import pickle

import h5py
import numpy as np
import pytest
from safetensors.numpy import save_file

import geomtax.audit as ga


@pytest.fixture
def arr():
    return np.arange(24, dtype=np.float32).reshape(6, 4)


def test_npy_npz_safetensors_h5ad_csv(tmp_path, arr):
    np.save(tmp_path / "a.npy", arr)
    np.testing.assert_array_equal(ga.load_embeddings(tmp_path / "a.npy"), arr)
    np.savez(tmp_path / "b.npz", emb=arr, other=arr * 2)
    np.testing.assert_array_equal(ga.load_embeddings(tmp_path / "b.npz", name="other"), arr * 2)
    with pytest.raises(ValueError, match="pass name"):
        ga.load_embeddings(tmp_path / "b.npz")
    with pytest.raises(ValueError, match="no array named 'zz'"):
        ga.load_embeddings(tmp_path / "b.npz", name="zz")
    save_file({"hidden": arr}, str(tmp_path / "c.safetensors"))
    np.testing.assert_array_equal(ga.load_embeddings(tmp_path / "c.safetensors"), arr)
    with h5py.File(tmp_path / "d.h5ad", "w") as f:
        f.create_dataset("X", data=arr[:, :2])
        g = f.create_group("obsm")
        g.create_dataset("X_model", data=arr)
        g.create_dataset("X_pca", data=arr[:, :3])
    np.testing.assert_array_equal(ga.load_embeddings(tmp_path / "d.h5ad", name="X_model"), arr)
    np.testing.assert_array_equal(ga.load_embeddings(tmp_path / "d.h5ad", name="X"), arr[:, :2])
    with pytest.raises(ValueError, match="obsm keys"):
        ga.load_embeddings(tmp_path / "d.h5ad")
    np.savetxt(tmp_path / "e.csv", arr, delimiter=",", header="a,b,c,d", comments="")
    np.testing.assert_allclose(ga.load_embeddings(tmp_path / "e.csv"), arr)


def test_pickle_refused(tmp_path):
    obj = np.array([{"a": 1}, None], dtype=object)
    np.save(tmp_path / "obj.npy", obj, allow_pickle=True)
    with pytest.raises(ValueError, match="pickled"):
        ga.load_embeddings(tmp_path / "obj.npy")
    np.savez(tmp_path / "obj.npz", x=obj)
    with pytest.raises(ValueError, match="pickled"):
        ga.load_embeddings(tmp_path / "obj.npz")
    with open(tmp_path / "raw.npy", "wb") as fh:
        pickle.dump(np.ones(3), fh)
    with pytest.raises(ValueError, match="pickle"):
        ga.load_embeddings(tmp_path / "raw.npy")
    (tmp_path / "m.pkl").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(ValueError, match="refusing"):
        ga.load_embeddings(tmp_path / "m.pkl")


def test_unreadable_unknown_empty(tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"not a numpy file at all")
    with pytest.raises(ValueError, match="bad.npy"):
        ga.load_embeddings(tmp_path / "bad.npy")
    # A text file named .npy is not a NumPy file (it used to be reported as a pickled array).
    (tmp_path / "text.npy").write_text("1 2 3\n4 5 6\n")
    for path in (tmp_path / "text.npy", tmp_path / "text.npz"):
        if path.suffix == ".npz":
            path.write_text("1 2 3\n")
        with pytest.raises(ValueError, match=f"not a \\{path.suffix} file") as info:
            ga.load_embeddings(path)
        assert "pickle" not in str(info.value)
    (tmp_path / "bad.safetensors").write_bytes(b"\x00\x01garbage")
    with pytest.raises(ValueError, match="could not read"):
        ga.load_embeddings(tmp_path / "bad.safetensors")
    with pytest.raises(ValueError, match="no such file"):
        ga.load_embeddings(tmp_path / "missing.npy")
    (tmp_path / "x.parquet").write_bytes(b"")
    with pytest.raises(ValueError, match="unsupported format"):
        ga.load_embeddings(tmp_path / "x.parquet")
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    with pytest.raises(ValueError, match="empty"):
        ga.load_embeddings(tmp_path / "empty.npy")


def test_data_spec_syntax(tmp_path, arr):
    """PATH#KEY is the one data-path syntax of audit and sweep (load_array, check_array)."""
    from geomtax.audit._loaders import check_array, load_array, split_data_spec

    assert split_data_spec("a/b.npz#emb") == ("a/b.npz", "emb")
    assert split_data_spec("a/b.npy") == ("a/b.npy", None)
    with pytest.raises(ValueError, match="ends with '#'"):
        split_data_spec("b.npz#")
    np.savez(tmp_path / "b.npz", emb=arr, other=arr * 2)
    np.testing.assert_array_equal(load_array("b.npz#other", base_dir=tmp_path), arr * 2)
    np.save(tmp_path / "a.npy", arr)
    assert check_array(tmp_path / "a.npy") == arr.shape
    assert check_array("b.npz#emb", base_dir=tmp_path) == arr.shape
    with pytest.raises(ValueError, match="holds one array"):
        check_array(f"{tmp_path / 'a.npy'}#emb")
    with pytest.raises(ValueError, match="no such file"):
        check_array("missing.npy", base_dir=tmp_path)


def test_labels(tmp_path):
    np.save(tmp_path / "l.npy", np.array(["human", "ecoli", "human"]))
    assert list(ga.load_labels(tmp_path / "l.npy")) == ["human", "ecoli", "human"]
    (tmp_path / "l.txt").write_text("a\nb\n\n")
    assert list(ga.load_labels(tmp_path / "l.txt")) == ["a", "b"]


def test_pool_embeddings_windows_and_mask():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 10, 4))
    np.testing.assert_allclose(ga.pool_embeddings(x), x.mean(1))
    np.testing.assert_allclose(ga.pool_embeddings(x, window=(2, 5)), x[:, 2:5].mean(1))
    mask = np.zeros((3, 10))
    mask[:, :7] = 1
    np.testing.assert_allclose(ga.pool_embeddings(x, mask=mask), x[:, :7].mean(1))
    with pytest.raises(ValueError, match="window"):
        ga.pool_embeddings(x, window=(5, 20))
    with pytest.raises(ValueError, match="no position"):
        ga.pool_embeddings(x, mask=np.zeros((3, 10)))


def test_filter_rows_counts_and_errors():
    x = np.ones((10, 3))
    x[2, 1] = np.nan
    x[5] = 0.0
    f = np.arange(20.0).reshape(10, 2)
    f[7, 0] = np.inf
    (xf, ff), kept = ga.filter_rows(x, f, max_drop_fraction=0.3)
    assert list(kept) == [0, 1, 3, 4, 6, 8, 9]
    assert xf.shape == (7, 3) and ff.shape == (7, 2)
    with pytest.raises(ValueError, match="3 of 10 rows"):
        ga.filter_rows(x, f, max_drop_fraction=0.1)
    with pytest.raises(ValueError, match="paired"):
        ga.filter_rows(x, f[:9], names=["emb", "features"])
    with pytest.raises(ValueError, match="empty"):
        ga.filter_rows(np.zeros((0, 3)))


def test_embed_sequences_batches_and_order():
    calls = []

    def embed_fn(batch):
        calls.append(len(batch))
        return np.array([[len(s), s.count("A")] for s in batch], dtype=np.float32)

    seqs = ["A" * i for i in range(1, 12)]
    out = ga.embed_sequences(embed_fn, seqs, chunk_size=4, progress=True)
    assert calls == [4, 4, 3]
    np.testing.assert_array_equal(out[:, 0], np.arange(1, 12))
    with pytest.raises(ValueError, match="returned shape"):
        ga.embed_sequences(lambda b: np.zeros((1, 2)), seqs, chunk_size=4, progress=False)
    with pytest.raises(ValueError, match="no sequences"):
        ga.embed_sequences(embed_fn, [], progress=False)
    # batch_size= is chunk_size's 0.1 name: it still works, with a warning
    with pytest.warns(DeprecationWarning, match=r"embed_sequences\(batch_size=...\) is deprecated"):
        old = ga.embed_sequences(embed_fn, seqs, batch_size=4, progress=False)
    np.testing.assert_array_equal(old, out)


def test_huggingface_adapter_tiny_random_model():
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "A", "C", "G", "T"]
    import os
    import tempfile

    d = tempfile.mkdtemp()
    with open(os.path.join(d, "vocab.txt"), "w") as fh:
        fh.write("\n".join(vocab))
    tok = transformers.BertTokenizer(os.path.join(d, "vocab.txt"), do_lower_case=False)
    cfg = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    model = transformers.BertModel(cfg).eval()
    fn = ga.huggingface_embed_fn(model, tok, layer=-1)
    seqs = ["A C G T", "G G", "T A C"]
    out = ga.embed_sequences(fn, seqs, chunk_size=2, progress=False)
    assert out.shape == (3, 16) and np.isfinite(out).all()
    # Padding must not change a sequence's pooled embedding.
    alone = fn(["G G"])
    np.testing.assert_allclose(out[1], alone[0], atol=1e-5)


# --- bounded loaders (issue 15 item 4): declared sizes are checked before allocating ---------


def _npy_header(shape, dtype="<f8") -> bytes:
    import io

    from numpy.lib import format as npf

    buf = io.BytesIO()
    npf.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    return b"\x93NUMPY\x01\x00" + buf.getvalue()[8:]


def test_npy_header_bomb_refused_before_allocating(tmp_path):
    from geomtax.audit._loaders import check_array

    path = tmp_path / "bomb.npy"
    path.write_bytes(_npy_header((10**9, 10**3)))  # declares 8 TB in a ~128-byte file
    for fn in (ga.load_embeddings, check_array, ga.load_labels):
        with pytest.raises(ValueError, match="over the load limit") as info:
            fn(path)
        msg = str(info.value)
        assert "bomb.npy" in msg and "(1000000000, 1000)" in msg and "8000000000000 bytes" in msg
        assert "max_bytes=" in msg and "GEOMTAX_MAX_LOAD_BYTES" in msg and "\n" not in msg
    # under the limit but larger than the file: a truncated file, said so
    path.write_bytes(_npy_header((100, 10)) + b"\x00" * 80)
    with pytest.raises(ValueError, match="truncated.*8000 bytes"):
        check_array(path)


def test_npz_bombs_refused_from_headers(tmp_path):
    import zipfile

    from geomtax.audit._loaders import check_array

    # a highly compressible member: 8 MB of zeros in a few KB
    np.savez_compressed(tmp_path / "zeros.npz", big=np.zeros((4096, 256)), small=np.ones((3, 2)))
    assert (tmp_path / "zeros.npz").stat().st_size < 100_000
    with pytest.raises(ValueError, match=r"zeros.npz: 'big' declares.*8388\d+ bytes.*1000000"):
        ga.load_embeddings(tmp_path / "zeros.npz", name="big", max_bytes=1_000_000)
    with pytest.raises(ValueError, match="'big'.*over the load limit"):
        check_array(f"{tmp_path / 'zeros.npz'}#big", max_bytes=1_000_000)
    # another member under the limit still loads
    out = ga.load_embeddings(tmp_path / "zeros.npz", name="small", max_bytes=1_000_000)
    np.testing.assert_array_equal(out, np.ones((3, 2)))
    # a member whose header declares a huge shape
    with zipfile.ZipFile(tmp_path / "lie.npz", "w") as zf:
        zf.writestr("x.npy", _npy_header((10**9, 10**3), "<f4"))
    for fn in (ga.load_embeddings, check_array):
        with pytest.raises(ValueError, match=r"'x' declares shape \(1000000000, 1000\) float32"):
            fn(tmp_path / "lie.npz")


def test_safetensors_and_h5ad_bombs_refused(tmp_path):
    import json
    import struct

    from geomtax.audit._loaders import check_array

    header = json.dumps(
        {"t": {"dtype": "F32", "shape": [10**9, 1000], "data_offsets": [0, 4 * 10**12]}}
    ).encode()
    (tmp_path / "bomb.safetensors").write_bytes(struct.pack("<Q", len(header)) + header)
    for fn in (ga.load_embeddings, check_array):
        with pytest.raises(ValueError, match=r"'t' declares shape \(1000000000, 1000\) F32"):
            fn(tmp_path / "bomb.safetensors")
    # a chunked, never-written dataset: a tiny file declaring 8 GB
    with h5py.File(tmp_path / "bomb.h5ad", "w") as f:
        g = f.create_group("obsm")
        g.create_dataset("X_big", shape=(10**6, 1000), dtype="f8", chunks=(1000, 100))
    assert (tmp_path / "bomb.h5ad").stat().st_size < 100_000
    for fn in (ga.load_embeddings, check_array):
        with pytest.raises(ValueError, match=r"/obsm/X_big' declares shape \(1000000, 1000\)"):
            spec = (
                f"{tmp_path / 'bomb.h5ad'}#X_big" if fn is check_array else tmp_path / "bomb.h5ad"
            )
            fn(spec, max_bytes=10**8)


def test_load_limit_env_var_and_mmap(tmp_path, monkeypatch, arr):
    from geomtax.audit._limits import default_max_bytes, parse_bytes
    from geomtax.audit._loaders import check_array, load_array

    assert default_max_bytes() > 0 and parse_bytes("8GiB") == 2**33
    np.save(tmp_path / "a.npy", arr)  # 96 bytes
    out = ga.load_embeddings(tmp_path / "a.npy")
    assert isinstance(out, np.memmap)  # memory-mapped, not read into memory
    np.testing.assert_array_equal(out, arr)
    monkeypatch.setenv("GEOMTAX_MAX_LOAD_BYTES", "64")
    with pytest.raises(ValueError, match="96 bytes.*limit of 64 bytes"):
        load_array(tmp_path / "a.npy")
    with pytest.raises(ValueError, match="over the load limit"):
        check_array(tmp_path / "a.npy")
    assert check_array(tmp_path / "a.npy", max_bytes=96) == arr.shape  # the option wins
    monkeypatch.setenv("GEOMTAX_MAX_LOAD_BYTES", "lots")
    with pytest.raises(ValueError, match="GEOMTAX_MAX_LOAD_BYTES='lots' is not a byte count"):
        ga.load_embeddings(tmp_path / "a.npy")


def test_text_parse_errors_name_the_file(tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,x\n")
    with pytest.raises(ValueError, match=r"bad.csv: not a numeric CSV table .*'x'"):
        ga.load_embeddings(tmp_path / "bad.csv")
    (tmp_path / "ragged.tsv").write_text("1\t2\n3\t4\t5\n")
    with pytest.raises(ValueError, match=r"ragged.tsv: not a numeric TSV table"):
        ga.load_embeddings(tmp_path / "ragged.tsv")
    (tmp_path / "big.csv").write_text("1,2\n" * 100)
    with pytest.raises(ValueError, match="big.csv.*over the load limit"):
        ga.load_embeddings(tmp_path / "big.csv", max_bytes=1000)
