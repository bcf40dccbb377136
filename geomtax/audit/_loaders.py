"""Loading embedding and label files: no pickle, a size check before any allocation.

Files are read **without pickle**: ``.npy``/``.npz`` go through ``numpy.load(allow_pickle=False)``
(``.npy`` memory-mapped), ``.safetensors`` through ``safetensors.numpy``, AnnData ``.h5ad`` through
``h5py`` (no anndata dependency). A pickled file (``.pkl``/``.pickle``/``.pt``, or an object array
inside ``.npy``) is refused with a ``ValueError``. Every loader reads the declared shape and dtype
first and refuses an array over the load limit (``max_bytes=``, ``GEOMTAX_MAX_LOAD_BYTES``; see
``_limits.py``). One data-path syntax, ``file#key``, for the audit and the sweeps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._limits import check_bytes, declared_bytes, resolve_max_bytes

_PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".joblib")
_PICKLE_MAGIC = b"\x80"
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_SAFETENSORS_MAX_HEADER = 100_000_000  # the safetensors library's own cap
_SAFETENSORS_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "float16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U64": "uint64",
    "U32": "uint32",
    "U16": "uint16",
    "U8": "uint8",
    "BOOL": "bool",
    "F8_E4M3": "uint8",
    "F8_E5M2": "uint8",
}
#: Formats :func:`load_embeddings` reads (and the sweep's data paths accept).
ARRAY_SUFFIXES = (".npy", ".npz", ".safetensors", ".h5ad", ".csv", ".tsv")


def split_data_spec(spec: str | Path) -> tuple[str, str | None]:
    """Split a data path ``PATH`` or ``PATH#KEY`` into ``(PATH, KEY or None)``.

    The one data-path syntax of ``geomtax audit`` and ``geomtax sweep``: ``KEY`` names an
    ``.npz`` member, a safetensors tensor or an ``.h5ad`` obsm key (``X`` for the matrix).

    Examples:
        >>> split_data_spec("emb.npz#layer3")
        ('emb.npz', 'layer3')
        >>> split_data_spec("emb.npy")
        ('emb.npy', None)
    """
    path, sep, key = str(spec).rpartition("#")
    if not sep:
        return str(spec), None
    if not path:
        raise ValueError(f"data path {str(spec)!r} has a '#KEY' but no file before it")
    if not key:
        raise ValueError(f"data path {str(spec)!r} ends with '#'; name the array after it")
    return path, key


def load_array(
    spec: str | Path, *, base_dir: str | Path | None = None, max_bytes: int | None = None
) -> np.ndarray:
    """Load ``PATH`` or ``PATH#KEY`` (see :func:`split_data_spec`) with :func:`load_embeddings`.

    Args:
        spec: the data path.
        base_dir: folder against which a relative ``PATH`` is resolved (default: the current
            directory).
        max_bytes: the load limit (see :func:`load_embeddings`).
    """
    path, key = split_data_spec(spec)
    return load_embeddings(_resolve(path, base_dir), name=key, max_bytes=max_bytes)


def check_array(
    spec: str | Path, *, base_dir: str | Path | None = None, max_bytes: int | None = None
) -> tuple:
    """Check that ``PATH[#KEY]`` exists and holds a loadable numeric array; return its shape.

    Cheap: only headers are read (the ``.npy`` header, the ``.npz`` member's header, the
    safetensors JSON header, the ``.h5ad`` dataset's shape), never the values; text files are
    read in full. The declared size is checked against the load limit (see
    :func:`load_embeddings`).

    Raises:
        ValueError: with the message :func:`load_embeddings` would give.
    """
    path, key = split_data_spec(spec)
    p = _resolve(path, base_dir)
    limit = resolve_max_bytes(max_bytes)
    _check_file(p)
    suffix = p.suffix.lower()
    if suffix == ".npy" and key is not None:
        raise ValueError(f"{p}: a .npy file holds one array; drop '#{key}'")
    try:
        if suffix == ".npy":
            shape, dtype = _npy_info(p, limit)[:2]
        elif suffix == ".npz":
            with _open_zip(p) as zf:
                _, _, shape, dtype = _npz_info(p, zf, key, limit)
        elif suffix == ".safetensors":
            _, shape, dtype = _safetensors_info(p, key, limit)
        elif suffix == ".h5ad":
            import h5py

            with h5py.File(p, "r") as f:
                node = _h5ad_node(p, f, key, limit)
                shape, dtype = node.shape, node.dtype
        else:
            return tuple(load_embeddings(p, name=key, max_bytes=limit).shape)
    except ValueError:
        raise
    except Exception as err:
        raise ValueError(f"{p}: could not read the file ({type(err).__name__}: {err})") from err
    _check_numeric(p, dtype, shape)
    return tuple(int(s) for s in shape)


def _resolve(path: str | Path, base_dir) -> Path:
    p = Path(path).expanduser()
    if base_dir is not None and not p.is_absolute():
        p = Path(base_dir) / p
    return p


def _check_file(path: Path) -> None:
    _refuse_pickle(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    if not path.is_file():
        raise ValueError(f"{path}: not a file")


def _check_npy_head(path: Path, head: bytes, member: str | None = None) -> None:
    where = f"{path}: member {member!r}" if member is not None else f"{path}"
    if head[:1] == _PICKLE_MAGIC:
        raise ValueError(f"{where}: this is a pickle stream, not a .npy array; refusing to load it")
    if head != _NPY_MAGIC:
        what = "a zip archive (an .npz file?)" if head[:2] == _ZIP_MAGIC else "no NumPy header"
        if head[:4] == _HDF5_MAGIC[:4]:
            what = "an HDF5 file (an .h5ad file?)"
        raise ValueError(
            f"{where}: not a .npy file ({what}; it starts with {head[:6]!r}); save it with "
            "numpy.save"
        )


def _read_npy_header(fh, path: Path, member: str | None = None):
    """``(shape, dtype, fortran_order)`` from the open ``.npy`` stream ``fh`` (header only)."""
    from numpy.lib import format as npf

    head = fh.read(len(_NPY_MAGIC))
    _check_npy_head(path, head, member)
    where = f"{path}: member {member!r}" if member is not None else f"{path}"
    version = tuple(fh.read(2))
    try:
        if version == (1, 0):
            shape, fortran, dtype = npf.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = npf.read_array_header_2_0(fh)
        elif version == (3, 0) and hasattr(npf, "_read_array_header"):
            shape, fortran, dtype = npf._read_array_header(fh, version)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except ValueError as err:
        raise ValueError(f"{where}: not a readable .npy header ({err})") from err
    if dtype.hasobject:
        raise ValueError(
            f"{where}: holds an object (pickled) array; refusing to load it without pickle. "
            "Save a numeric array instead"
        )
    return tuple(int(s) for s in shape), dtype, fortran


def _npy_info(path: Path, limit: int):
    """``(shape, dtype, data_offset)`` of a ``.npy`` file, checked against ``limit``."""
    with open(path, "rb") as fh:
        shape, dtype, _ = _read_npy_header(fh, path)
        offset = fh.tell()
    nbytes = declared_bytes(shape, dtype)
    check_bytes(path, nbytes, limit, what=f"shape {shape} {dtype}")
    have = path.stat().st_size - offset
    if nbytes > have:
        raise ValueError(
            f"{path}: truncated: the header declares shape {shape} {dtype} = {nbytes} bytes "
            f"but the file holds {have} bytes of data"
        )
    return shape, dtype, offset


def _npy_error(path: Path, err: ValueError) -> ValueError:
    if "allow_pickle" in str(err):
        return ValueError(
            f"{path}: holds an object (pickled) array; refusing to load it without pickle. "
            "Save a numeric array instead"
        )
    return ValueError(f"{path}: could not read the file ({err})")


def _check_numeric(path: Path, dtype, shape) -> None:
    if np.dtype(dtype).kind not in "fiub":
        raise ValueError(f"{path}: expected a numeric array, got dtype {dtype}")
    if len(shape) == 0 or int(np.prod(shape)) == 0:
        raise ValueError(f"{path}: the array is empty (shape {tuple(shape)})")


def _refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        raise ValueError(
            f"{path}: refusing to load a pickled file (pickle can run arbitrary code); "
            "save the array as .npy, .npz, .safetensors or .h5ad instead"
        )


def load_embeddings(
    path: str | Path, *, name: str | None = None, max_bytes: int | None = None
) -> np.ndarray:
    """Load a numeric array (embeddings, features) from disk without pickle.

    The declared shape and dtype are read first (file headers) and an array larger than the
    load limit is refused before anything is allocated. ``.npy`` files are memory-mapped
    (copy-on-write: the values are read from disk as they are used, so do not rewrite the file
    while the array is in use).

    Args:
        path: ``.npy``, ``.npz``, ``.safetensors``, ``.h5ad`` (AnnData; reads ``obsm/<name>``,
            or ``X`` when ``name == "X"``), or ``.csv``/``.tsv`` (numeric, optional header).
        name: which array inside a multi-array file (``.npz`` member, safetensors tensor,
            ``.h5ad`` obsm key). Optional when the file holds exactly one array.
        max_bytes: the most bytes one array may take (a text file counts as 4 times its size).
            Default: the ``GEOMTAX_MAX_LOAD_BYTES`` environment variable (``8000000000``,
            ``8GB`` or ``8GiB``), else half of the physical memory.

    Returns:
        A NumPy array (``(n, d)`` pooled, or ``(n, L, d)`` per-position).

    Raises:
        ValueError: unknown or pickled format, object arrays, a missing/ambiguous ``name``,
            an empty array, an array over the load limit, or an unreadable file (the message
            names the path).

    Examples:
        >>> import numpy as np, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "e.npy"); np.save(p, np.ones((3, 2)))
        >>> load_embeddings(p).shape
        (3, 2)
    """
    path = Path(path).expanduser()
    limit = resolve_max_bytes(max_bytes)
    _check_file(path)
    suffix = path.suffix.lower()
    if suffix == ".npy" and name is not None:
        raise ValueError(f"{path}: a .npy file holds one array; drop '#{name}'")
    try:
        if suffix == ".npy":
            arr = _load_npy(path, limit)
        elif suffix == ".npz":
            arr = _load_npz(path, name, limit)
        elif suffix == ".safetensors":
            arr = _load_safetensors(path, name, limit)
        elif suffix == ".h5ad":
            arr = _load_h5ad(path, name, limit)
        elif suffix in (".csv", ".tsv"):
            arr = _load_text(path, "," if suffix == ".csv" else "\t", limit)
        else:
            raise ValueError(
                f"{path}: unsupported format {suffix!r}; use .npy, .npz, .safetensors, .h5ad, "
                ".csv or .tsv"
            )
    except ValueError:
        raise
    except Exception as err:  # unreadable / corrupt file: re-raise naming the path
        raise ValueError(f"{path}: could not read the file ({type(err).__name__}: {err})") from err
    _check_numeric(path, arr.dtype, arr.shape)
    return arr


def _load_npy(path: Path, limit: int, *, mmap: bool = True) -> np.ndarray:
    shape, dtype, _ = _npy_info(path, limit)
    try:
        if mmap and declared_bytes(shape, dtype) > 0:
            return np.load(path, mmap_mode="c", allow_pickle=False)
        return np.load(path, allow_pickle=False)
    except ValueError as err:
        raise _npy_error(path, err) from err


def _pick(path, names, name, what):
    names = list(names)
    if name is None:
        if len(names) != 1:
            raise ValueError(f"{path}: holds {len(names)} {what} {names}; pass name=...")
        return names[0]
    if name not in names:
        raise ValueError(f"{path}: no {what[:-1]} named {name!r}; available: {names}")
    return name


def _open_zip(path: Path):
    import zipfile

    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] != _ZIP_MAGIC:
        what = "a .npy array" if head == _NPY_MAGIC[:4] else "not a zip archive"
        raise ValueError(
            f"{path}: not a .npz file ({what}; it starts with {head!r}); save it with numpy.savez"
        )
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
        raise ValueError(
            f"{path}: not a readable .npz file (a damaged zip archive: {err})"
        ) from err


def _npz_info(path: Path, zf, name, limit: int):
    """``(key, zipinfo, shape, dtype)`` of the chosen member, from its header only."""
    members = {}
    for info in zf.infolist():
        if info.is_dir():
            continue
        key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        members[key] = info
    key = _pick(path, members.keys(), name, "arrays")
    info = members[key]
    check_bytes(path, info.file_size, limit, member=key, what="an uncompressed size of")
    with zf.open(info) as fh:
        shape, dtype, _ = _read_npy_header(fh, path, key)
    nbytes = declared_bytes(shape, dtype)
    check_bytes(path, nbytes, limit, member=key, what=f"shape {shape} {dtype}")
    if nbytes > info.file_size:
        raise ValueError(
            f"{path}: member {key!r} is damaged: its header declares shape {shape} {dtype} = "
            f"{nbytes} bytes but the member holds {info.file_size} bytes"
        )
    return key, info, shape, dtype


def _load_npz(path: Path, name, limit: int):
    from numpy.lib import format as npf

    with _open_zip(path) as zf:
        key, info, _, _ = _npz_info(path, zf, name, limit)
        with zf.open(info) as fh:
            try:
                return npf.read_array(fh, allow_pickle=False)
            except ValueError as err:
                if "allow_pickle" in str(err):
                    raise ValueError(
                        f"{path}: member {key!r} is an object (pickled) array; refusing to load it"
                    ) from err
                raise ValueError(f"{path}: member {key!r} could not be read ({err})") from err


def _safetensors_info(path: Path, name, limit: int):
    """``(key, shape, numpy dtype)`` of the chosen tensor, from the JSON header only."""
    import json

    size = path.stat().st_size
    with open(path, "rb") as fh:
        raw = fh.read(8)
        n = int.from_bytes(raw, "little") if len(raw) == 8 else -1
        if n < 2 or n > min(size - 8, _SAFETENSORS_MAX_HEADER):
            raise ValueError(
                f"{path}: could not read the file: not a .safetensors file (no valid header "
                f"length; it starts with "
                f"{raw!r}); save it with safetensors.numpy.save_file"
            )
        try:
            header = json.loads(fh.read(n))
        except ValueError as err:
            raise ValueError(
                f"{path}: could not read the file: not a .safetensors file (bad JSON header: {err})"
            ) from err
    if not isinstance(header, dict):
        raise ValueError(
            f"{path}: could not read the file: not a .safetensors file (the header is not a "
            "JSON object)"
        )
    header.pop("__metadata__", None)
    key = _pick(path, header.keys(), name, "tensors")
    entry = header[key]
    try:
        shape = tuple(int(s) for s in entry["shape"])
        start, stop = (int(v) for v in entry["data_offsets"])
        st_dtype = str(entry["dtype"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: tensor {key!r} has a malformed header entry {entry!r}") from err
    dtype = np.dtype(_SAFETENSORS_DTYPES.get(st_dtype, "V1"))
    nbytes = max(declared_bytes(shape, dtype), stop - start)
    check_bytes(path, nbytes, limit, member=key, what=f"shape {shape} {st_dtype}")
    if stop > size - 8 - n:
        raise ValueError(
            f"{path}: truncated: tensor {key!r} ends at byte {stop} of the data but the file "
            f"holds {size - 8 - n}"
        )
    return key, shape, dtype


def _load_safetensors(path: Path, name, limit: int):
    from safetensors import safe_open

    key, _, _ = _safetensors_info(path, name, limit)
    with safe_open(str(path), framework="numpy") as f:
        return f.get_tensor(key)


def _h5ad_node(path: Path, f, name, limit: int):
    """The chosen ``.h5ad`` dataset, its declared size checked against ``limit``."""
    import h5py

    if name == "X":
        if "X" not in f:
            raise ValueError(f"{path}: no 'X' matrix in this AnnData file")
        node = f["X"]
    else:
        if "obsm" not in f:
            raise ValueError(f"{path}: no 'obsm' group in this AnnData file")
        key = _pick(path, f["obsm"].keys(), name, "obsm keys")
        node = f["obsm"][key]
    if not isinstance(node, h5py.Dataset):
        raise ValueError(
            f"{path}: {node.name} is a sparse or grouped matrix; store it dense to audit it"
        )
    if node.dtype.kind in "fiub":
        shape = tuple(int(s) for s in node.shape)
        check_bytes(
            path,
            declared_bytes(shape, node.dtype),
            limit,
            member=node.name,
            what=f"shape {shape} {node.dtype}",
        )
    return node


def _load_h5ad(path: Path, name, limit: int):
    import h5py

    with h5py.File(path, "r") as f:
        node = _h5ad_node(path, f, name, limit)
        _check_numeric(path, node.dtype, node.shape)
        return np.asarray(node[()])


def _check_text_size(path: Path, limit: int) -> None:
    size = path.stat().st_size
    check_bytes(path, 4 * size, limit, what=f"a text file of {size} bytes, parsed to up to")


def _load_text(path: Path, delimiter: str, limit: int):
    _check_text_size(path, limit)
    kind = "CSV" if delimiter == "," else "TSV"
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path}: not a {kind} text file (binary content: {err}); expected numbers "
            f"separated by {delimiter!r}, with an optional header row"
        ) from err
    skip = 0
    try:
        [float(v) for v in first.strip().split(delimiter) if v]
    except ValueError:
        skip = 1  # a header row
    try:
        return np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2, dtype=np.float64)
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{path}: not a numeric {kind} table ({err}); expected numbers separated by "
            f"{delimiter!r}, with an optional header row"
        ) from err


def load_labels(
    path: str | Path, *, name: str | None = None, max_bytes: int | None = None
) -> np.ndarray:
    """Load labels without pickle.

    ``.npy``/``.npz`` (numeric or fixed-width string arrays), or a text file
    (``.txt``/``.csv``/``.tsv``) with one label per line. Bounded like :func:`load_embeddings`
    (``max_bytes``; a text file counts as 4 times its size).

    Returns:
        A 1-D array of labels.
    """
    path = Path(path).expanduser()
    limit = resolve_max_bytes(max_bytes)
    _check_file(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = _load_npy(path, limit, mmap=False)
        elif suffix == ".npz":
            arr = _load_npz(path, name, limit)
        else:
            _check_text_size(path, limit)
            with open(path, encoding="utf-8") as fh:
                arr = np.asarray([line.strip() for line in fh if line.strip()])
    except ValueError:
        raise
    except Exception as err:
        raise ValueError(f"{path}: could not read the file ({type(err).__name__}: {err})") from err
    arr = np.asarray(arr).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{path}: no labels")
    return arr
