"""Files on disk: IDX files (MNIST, Fashion-MNIST), where data sets are searched for, the cache,
and downloads with MD5 checks."""
from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ._dataset import DataFileError, DownloadError, PathLike

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_IDX_FIX = ("To fix it: if the file came from the Debian package, reinstall it "
            "(`sudo apt-get install --reinstall dataset-fashion-mnist`); if it was downloaded into "
            "the gnilab cache, delete it so that it is downloaded again (download=True); or point "
            "the GNILAB_DATA environment variable at a directory holding good files.")


def _idx_error(path: Path, problem: str) -> DataFileError:
    return DataFileError(f"{path}: {problem}. {_IDX_FIX}")


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or gzip-compressed.

    The header is a big-endian magic number ``0x0000TTDD`` (``TT`` the type code: ``0x08``
    uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64;
    ``DD`` the number of dimensions), then ``DD`` big-endian uint32 sizes, then the data in C
    order. Label files are ``0x00000801`` (1-D uint8), image files ``0x00000803`` (3-D uint8).
    Compression is recognised from the content (gzip magic bytes), not the file name.

    Parameters
    ----------
    path : str or path-like
        The IDX file, plain or gzip-compressed.

    Returns
    -------
    numpy.ndarray
        A writable array in native byte order with the header's shape.

    Raises
    ------
    DataFileError
        Missing, unreadable, truncated or corrupt file, wrong magic number, or a payload whose
        size is not exactly the product of the dimensions times the item size. The message names
        the file and how to fix it.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise _idx_error(path, "file not found") from None
    except OSError as exc:
        raise _idx_error(path, f"cannot be read ({exc})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise _idx_error(path, f"is a truncated or corrupt gzip file ({exc})") from None
    elif path.suffix == ".gz" and raw[:2] != b"\x00\x00":
        raise _idx_error(path, "is named .gz but is neither gzip-compressed nor an IDX file")
    if len(raw) < 4:
        raise _idx_error(path, f"is too short ({len(raw)} bytes) to hold an IDX header")
    zero, code, ndim = raw[:2], raw[2], raw[3]
    if zero != b"\x00\x00" or code not in _IDX_DTYPES or ndim == 0:
        raise _idx_error(path, f"has the wrong magic number 0x{raw[:4].hex()} (an IDX file "
                               f"starts with 0x000008DD for uint8 data with DD dimensions, e.g. "
                               f"0x00000801 for labels and 0x00000803 for images)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise _idx_error(path, f"is truncated inside its header ({len(raw)} bytes, the header "
                               f"of a {ndim}-D IDX file needs {header})")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "too long"
        raise _idx_error(path, f"is {what}: the header promises dims {dims} of {dtype.name} "
                               f"({expected} payload bytes) but the file holds {got}")
    arr = np.frombuffer(raw, dtype=dtype, count=math.prod(dims), offset=header)
    return arr.astype(dtype.newbyteorder("="), copy=True).reshape(dims)


# ---------------------------------------------------------------------------------------------
# where the files live, and downloads
# ---------------------------------------------------------------------------------------------
# The Debian/Ubuntu data-set packages (e.g. dataset-fashion-mnist) install here.
_SYSTEM_DIR = Path("/usr/share/datasets")

# Official base URLs, in the order tried.
_MIRRORS = {
    "fashion-mnist": (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
    "svhn": ("http://ufldl.stanford.edu/housenumbers/",),
}

# File name -> official MD5 of the file as published (the compressed file where compressed).
# (The Debian package recompresses Fashion-MNIST, so its .gz files have other MD5s; installed
# and user-supplied files are therefore validated by parsing, and MD5s are checked on download.)
_MD5 = {
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "cifar10": {
        "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
    },
    "svhn": {
        "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
        "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
    },
}

_PRETTY = {"fashion-mnist": "Fashion-MNIST", "mnist": "MNIST", "cifar10": "CIFAR-10",
           "svhn": "SVHN"}

_TIMEOUT_S = 30.0
_CHUNK = 1 << 20


def cache_dir(name: Optional[str] = None) -> Path:
    """gnilab's download cache: ``$XDG_CACHE_HOME/gnilab`` (default ``~/.cache/gnilab``), or its
    sub-directory ``name`` (``"fashion-mnist"``, ``"mnist"``, ``"cifar10"``, ``"svhn"``).

    Nothing is created on disk.

    Parameters
    ----------
    name : str, optional
        Data set name; ``None`` gives the cache root.

    Returns
    -------
    pathlib.Path
        The cache directory (or its sub-directory ``name``).
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = Path(base) / "gnilab"
    return path if name is None else path / name


def _search_dirs(name: str, root: Optional[PathLike], bare_data_dir: bool) -> list:
    """The directories searched for data set ``name``, as ``(path, why)`` pairs, in order."""
    if root is not None:
        return [(Path(root).expanduser(), "root argument")]
    dirs = []
    env = os.environ.get("GNILAB_DATA", "")
    for entry in (e for e in env.split(os.pathsep) if e):
        base = Path(entry).expanduser()
        dirs.append((base / name, "$GNILAB_DATA/" + name))
        if bare_data_dir:
            dirs.append((base, "$GNILAB_DATA"))
    dirs.append((_SYSTEM_DIR / name, "Debian package dataset-fashion-mnist"
                 if name == "fashion-mnist" else "system data sets"))
    dirs.append((cache_dir(name), "gnilab download cache"))
    return dirs


def _find(dirs, groups) -> Optional[list]:
    """In the first directory of ``dirs`` that holds one of the alternatives of every group of
    ``groups``, return those paths; ``None`` if no directory does."""
    for d, _ in dirs:
        found = []
        for alternatives in groups:
            hit = next((d / a for a in alternatives if (d / a).exists()), None)
            if hit is None:
                break
            found.append(hit)
        else:
            return found
    return None


def _locate(name: str, groups, files: Sequence[str], root, download: bool, mirrors,
            progress: bool, bare_data_dir: bool = True, extra_fix: str = "",
            also: str = "") -> list:
    """Paths of data set ``name``: one alternative of every group of ``groups`` from the first
    searched directory that holds them all (:func:`_search_dirs`, :func:`_find`); else, with
    ``download``, the ``files`` fetched into the target directory; else a
    :class:`DataFileError` that lists the directories searched and the fixes."""
    dirs = _search_dirs(name, root, bare_data_dir)
    paths = _find(dirs, groups)
    if paths is None and download:
        paths = _download(name, files, _target_dir(name, root), mirrors, progress)
    if paths is None:
        raise DataFileError(_missing_message(name, files, dirs, root, extra_fix, also=also))
    return paths


def _target_dir(name: str, root: Optional[PathLike]) -> Path:
    return Path(root).expanduser() if root is not None else cache_dir(name)


def _normalise_mirrors(name: str, mirrors) -> tuple:
    if mirrors is None:
        return _MIRRORS[name]
    if isinstance(mirrors, (str, bytes)):
        mirrors = [mirrors]
    mirrors = tuple(str(m) for m in mirrors)
    if not mirrors:
        raise ValueError(f"mirrors must be None or a non-empty sequence of base URLs, got "
                         f"{mirrors!r}")
    return mirrors


def _missing_message(name: str, split_files: Sequence[str], dirs, root, extra_fix: str = "",
                     also: str = ""):
    pretty = _PRETTY[name]
    lines = [f"{pretty} files {', '.join(split_files)}{also} were not found. Searched:"]
    for d, why in dirs:
        lines.append(f"  - {d}  ({why})")
    if root is None and not os.environ.get("GNILAB_DATA"):
        lines.append("  (GNILAB_DATA is not set)")
    lines.append("To fix it, do one of:")
    if extra_fix:
        lines.append(extra_fix)
    target = _target_dir(name, root)
    lines.append(f"  - place the files by hand in {target} as {', '.join(split_files)} "
                 f"(official source: {_MIRRORS[name][0]})")
    lines.append(f"  - set GNILAB_DATA to a directory holding them, directly or in a "
                 f"'{name}' sub-directory")
    lines.append(f"  - call gnilab.data.load_{name.replace('-', '_')}(..., download=True) where "
                 f"the internet is reachable (it downloads into {target})")
    return "\n".join(lines)


def _fetch(url: str, dest: Path, md5: Optional[str], progress: bool) -> None:
    """Download ``url`` to ``dest`` via a temporary file in the same directory, check the MD5,
    and rename atomically. Network problems raise ``OSError``/``HTTPException``; an MD5
    mismatch raises :class:`DataFileError`. No partial file is left behind either way."""
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        h = hashlib.md5()
        got = 0
        with os.fdopen(fd, "wb") as out:
            req = urllib.request.Request(url, headers={"User-Agent": "gnilab"})
            with urllib.request.urlopen(req, timeout=_TIMEOUT_S) as resp:
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                          desc=dest.name, disable=None if progress else True,
                          leave=False) as bar:
                    while True:
                        chunk = resp.read(_CHUNK)
                        if not chunk:
                            break
                        out.write(chunk)
                        h.update(chunk)
                        got += len(chunk)
                        bar.update(len(chunk))
        if total is not None and got != total:
            raise http.client.IncompleteRead(b"", total - got)
        if md5 is not None and h.hexdigest() != md5:
            raise DataFileError(
                f"{dest.name} downloaded from {url} has MD5 {h.hexdigest()}, expected {md5}; "
                f"the partial file was deleted. The mirror may serve a different or damaged "
                f"file: try again, pass another mirror (mirrors=[...]), or place a good copy of "
                f"{dest.name} in {dest.parent} by hand.")
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def _download(name: str, files: Sequence[str], target: Path, mirrors, progress: bool) -> list:
    """Make sure every file of ``files`` exists in ``target``, downloading the missing ones
    from ``mirrors`` (tried in order). Returns the paths."""
    mirrors = _normalise_mirrors(name, mirrors)
    paths = []
    for fname in files:
        dest = target / fname
        paths.append(dest)
        if dest.exists():
            continue
        md5 = _MD5[name].get(fname)
        failures, bad_checksum = [], None
        for base in mirrors:
            url = base.rstrip("/") + "/" + fname
            try:
                _fetch(url, dest, md5, progress)
                break
            except DataFileError as exc:
                bad_checksum = exc
                failures.append(f"  {url}: checksum mismatch")
            except (OSError, http.client.HTTPException, ValueError) as exc:
                # URLError / HTTPError / timeouts are OSErrors; a malformed mirror URL is a
                # ValueError from urllib.
                if isinstance(exc, urllib.error.HTTPError):
                    reason = f"HTTP {exc.code} {exc.reason}"
                else:
                    reason = getattr(exc, "reason", None) or exc
                failures.append(f"  {url}: {type(exc).__name__}: {reason}")
        else:
            if bad_checksum is not None:
                raise bad_checksum
            raise DownloadError(
                f"Could not download {_PRETTY[name]} file {fname}; tried:\n"
                + "\n".join(failures)
                + f"\nThe internet may not be reachable from this machine. Download the files "
                  f"elsewhere (official source: {_MIRRORS[name][0]}) and place them by hand "
                  f"in\n  {target}\nnamed exactly\n  "
                + ", ".join(files)
                + f"\nor set the GNILAB_DATA environment variable to a directory holding them "
                  f"(directly or in a '{name}' sub-directory).")
    return paths


def download_fashion_mnist(*, root: Optional[PathLike] = None, mirrors=None,
                           progress: bool = True) -> Path:
    """Download the four Fashion-MNIST files (MD5-checked) into ``root`` or the cache
    (``cache_dir("fashion-mnist")``); files already there are kept. Returns the directory.

    Parameters
    ----------
    root : str or path-like, optional
        Directory to download into (``~`` is expanded); the cache by default.
    mirrors : str or sequence of str, optional
        Base URLs tried in order for each file; the official mirrors by default.
    progress : bool, optional
        Show a tqdm progress bar per file (default ``True``).

    Returns
    -------
    pathlib.Path
        The directory holding the four files.

    Raises
    ------
    DownloadError
        When no mirror could be reached; the message says where to place the files by hand.
    DataFileError
        When a download has the wrong MD5 (the partial file is deleted).
    """
    target = _target_dir("fashion-mnist", root)
    _download("fashion-mnist", list(_MD5["fashion-mnist"]), target, mirrors, progress)
    return target
