"""Tests for gnilab.data.

Real Fashion-MNIST is read from the Debian package dataset-fashion-mnist when it is installed.
MNIST, CIFAR-10 and SVHN are tested with small files written here in the real formats and
served from a local HTTP server bound to 127.0.0.1 only; the real internet is never touched.
"""
import gzip
import hashlib
import http.server
import io
import math
import os
import pickle
import socket
import tarfile
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from gnilab import config, data
from gnilab.data import _idx, images
from gnilab.data import (ArrayDataset, DataFileError, DownloadError, FASHION_MNIST_CLASSES,
                         corrupt_labels, load_cifar10, load_digits, load_fashion_mnist,
                         load_mnist, load_mnist1d, load_svhn, make_linear_regression,
                         make_rotated_gaussian_2d, make_separable_2d, make_sinusoids, read_idx)

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
HAVE_FASHION = all((FASHION_DIR / f).exists() for f in FASHION_FILES)
needs_fashion = pytest.mark.skipif(
    not HAVE_FASHION, reason="real Fashion-MNIST not installed "
                             "(sudo apt-get install dataset-fashion-mnist)")

# sha256 of the *decompressed* label files (8-byte IDX header + labels), computed once from the
# Debian package's files: hashlib.sha256(gzip.open(f).read()).hexdigest().
FASHION_LABEL_SHA256 = {
    "train": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


# ----------------------------------------------------------------------------------------------
# helpers and fixtures
# ----------------------------------------------------------------------------------------------
_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B,
          np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}


def idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr)
    header = bytes([0, 0, _CODES[arr.dtype], arr.ndim])
    header += np.asarray(arr.shape, dtype=">u4").tobytes()
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray) -> Path:
    raw = idx_bytes(arr)
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path


def write_mnist_like(directory: Path, n_train=20, n_test=10, gz=True, seed=0):
    """Four IDX files of random uint8 images and labels; returns the arrays."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    ext = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        write_idx(directory / f"{prefix}-images-idx3-ubyte{ext}", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{ext}", labels)
        out[prefix] = (images, labels)
    return out


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No GNILAB_DATA, an empty cache and an empty system data directory."""
    monkeypatch.delenv("GNILAB_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(_idx, "_SYSTEM_DIR", tmp_path / "system")
    return tmp_path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_dir(tmp_path):
    """A directory served over HTTP on 127.0.0.1 (ephemeral port); yields (dir, base_url)."""
    served = tmp_path / "served"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def dead_url():
    """A loopback URL on a port that nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _cpu(t):
    return t.detach().cpu()


# ----------------------------------------------------------------------------------------------
# real Fashion-MNIST
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fashion_raw():
    if not HAVE_FASHION:
        pytest.skip("real Fashion-MNIST not installed (sudo apt-get install dataset-fashion-mnist)")
    mp = pytest.MonkeyPatch()
    mp.delenv("GNILAB_DATA", raising=False)  # find the files through the normal search
    try:
        out = {s: load_fashion_mnist(s, normalize=False, device="cpu") for s in ("train", "test")}
    finally:
        mp.undo()
    return out


@needs_fashion
def test_fashion_mnist_real_shapes_and_classes(fashion_raw):
    for split, n in (("train", 60000), ("test", 10000)):
        ds = fashion_raw[split]
        assert ds.x.shape == (n, 1, 28, 28) and ds.x.dtype == torch.get_default_dtype()
        assert ds.y.shape == (n,) and ds.y.dtype == torch.int64
        assert ds.classes == FASHION_MNIST_CLASSES and ds.num_classes == 10
        assert ds.name == f"fashion-mnist/{split}"
        assert float(ds.x.min()) == 0.0 and float(ds.x.max()) == 1.0
        assert torch.bincount(ds.y, minlength=10).tolist() == [n // 10] * 10


@needs_fashion
def test_fashion_mnist_normalisation_constants(fashion_raw):
    x = fashion_raw["train"].x.double()
    assert abs(x.mean().item() - images._FASHION_MNIST_MEAN) < 1e-4
    assert abs(x.std(unbiased=False).item() - images._FASHION_MNIST_STD) < 1e-4
    xn = load_fashion_mnist("test", limit=500, device="cpu").x
    expect = (fashion_raw["test"].x[:500] - 0.2860406) / 0.3530242
    assert torch.allclose(xn, expect, atol=1e-5)


@needs_fashion
def test_fashion_mnist_label_checksum(fashion_raw):
    for prefix, split in (("train", "train"), ("t10k", "test")):
        raw = gzip.open(FASHION_DIR / f"{prefix}-labels-idx1-ubyte.gz").read()
        assert hashlib.sha256(raw).hexdigest() == FASHION_LABEL_SHA256[prefix]
        assert np.array_equal(fashion_raw[split].y.numpy(), np.frombuffer(raw, np.uint8, offset=8))


@needs_fashion
def test_fashion_mnist_real_limit_flatten(fashion_raw):
    ds = load_fashion_mnist("test", limit=100, flatten=True, normalize=False, device="cpu",
                            dtype=torch.float64)
    assert ds.x.shape == (100, 784) and ds.x.dtype == torch.float64
    assert torch.equal(ds.y, fashion_raw["test"].y[:100])
    assert torch.allclose(ds.x.float(), fashion_raw["test"].x[:100].reshape(100, -1))


# ----------------------------------------------------------------------------------------------
# read_idx
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_read_idx_roundtrip(tmp_path, name):
    imgs = np.random.default_rng(1).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    out = read_idx(write_idx(tmp_path / name, imgs))
    assert out.dtype == np.uint8 and np.array_equal(out, imgs) and out.flags.writeable


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
def test_read_idx_generic_type_codes(tmp_path, dtype):
    arr = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    out = read_idx(write_idx(tmp_path / "g.idx.gz", arr))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative and np.array_equal(out, arr)


def _assert_idx_error(path, *fragments):
    with pytest.raises(DataFileError) as info:
        read_idx(path)
    msg = str(info.value)
    assert path.name in msg
    for f in ("dataset-fashion-mnist", "GNILAB_DATA", "delete") + fragments:
        assert f in msg, (f, msg)
    return msg


def test_read_idx_truncated(tmp_path):
    raw = idx_bytes(np.zeros((20, 28, 28), np.uint8))
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(raw[:-100])
    _assert_idx_error(p, "truncated")
    pgz = tmp_path / "t10k-images-idx3-ubyte.gz"
    pgz.write_bytes(gzip.compress(raw[:-1]))
    _assert_idx_error(pgz, "truncated")
    (tmp_path / "short").write_bytes(b"\x00\x00")
    _assert_idx_error(tmp_path / "short")


def test_read_idx_too_long(tmp_path):
    p = tmp_path / "labels-idx1-ubyte"
    p.write_bytes(idx_bytes(np.zeros(10, np.uint8)) + b"\x00")
    _assert_idx_error(p, "too long")


def test_read_idx_wrong_magic(tmp_path):
    p = tmp_path / "wrong-magic-idx3-ubyte"
    p.write_bytes(b"\x00\x00\x07\x03" + bytes(100))  # 0x07 is not an IDX type code
    _assert_idx_error(p, "magic")
    p2 = tmp_path / "zip-idx1-ubyte"
    p2.write_bytes(b"PK\x03\x04" + bytes(100))
    _assert_idx_error(p2, "magic")


def test_read_idx_garbage_gz(tmp_path):
    p = tmp_path / "garbage-idx1-ubyte.gz"
    p.write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(64))
    _assert_idx_error(p, "gzip")
    good = gzip.compress(idx_bytes(np.zeros((50, 28, 28), np.uint8)))
    p2 = tmp_path / "cut-idx3-ubyte.gz"
    p2.write_bytes(good[: len(good) // 2])  # a download cut short
    _assert_idx_error(p2, "gzip")
    p3 = tmp_path / "text-idx1-ubyte.gz"
    p3.write_bytes(b"<html>not found</html>")
    _assert_idx_error(p3)


def test_read_idx_missing(tmp_path):
    _assert_idx_error(tmp_path / "nope-idx1-ubyte.gz", "not found")


# ----------------------------------------------------------------------------------------------
# load_fashion_mnist with small files, and the search order
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_load_fashion_mnist_from_root(isolated, gz):
    root = isolated / "fm"
    arrays = write_mnist_like(root, gz=gz)
    ds = load_fashion_mnist("train", root=root, normalize=False, device="cpu")
    images, labels = arrays["train"]
    assert ds.x.shape == (20, 1, 28, 28) and ds.y.shape == (20,)
    assert torch.equal(ds.y, torch.from_numpy(labels.astype(np.int64)))
    assert torch.allclose(ds.x[:, 0], torch.from_numpy(images).float() / 255)
    dn = load_fashion_mnist("test", root=root, limit=4, device="cpu")
    expect = (torch.from_numpy(arrays["t10k"][0][:4]).float() / 255 - 0.2860406) / 0.3530242
    assert dn.x.shape == (4, 1, 28, 28) and torch.allclose(dn.x[:, 0], expect, atol=1e-6)
    assert load_fashion_mnist("test", root=root, flatten=True, device="cpu").x.shape == (10, 784)


def test_load_fashion_mnist_search_order(isolated, monkeypatch):
    # GNILAB_DATA/fashion-mnist comes before GNILAB_DATA itself, which comes before the cache.
    envdir = isolated / "env"
    a = write_mnist_like(envdir / "fashion-mnist", n_train=7, seed=1)
    write_mnist_like(envdir, n_train=8, seed=2)
    write_mnist_like(data.cache_dir("fashion-mnist"), n_train=9, seed=3)
    assert len(load_fashion_mnist(device="cpu")) == 9  # only the cache so far
    monkeypatch.setenv("GNILAB_DATA", str(envdir))
    ds = load_fashion_mnist(device="cpu", normalize=False)
    assert len(ds) == 7 and torch.equal(ds.y, torch.from_numpy(a["train"][1].astype(np.int64)))
    monkeypatch.setenv("GNILAB_DATA", str(isolated / "elsewhere") + os.pathsep + str(envdir))
    assert len(load_fashion_mnist(device="cpu")) == 7


def test_load_fashion_mnist_missing(isolated):
    with pytest.raises(DataFileError) as info:
        load_fashion_mnist("train", root=isolated / "empty")
    msg = str(info.value)
    for f in ("dataset-fashion-mnist", "apt-get install", "GNILAB_DATA", "download=True",
              str(isolated / "empty"), "train-images-idx3-ubyte"):
        assert f in msg, (f, msg)
    with pytest.raises(DataFileError) as info:
        load_fashion_mnist("test")
    msg = str(info.value)
    assert str(data.cache_dir("fashion-mnist")) in msg and str(isolated / "system") in msg


def test_download_fashion_mnist(isolated, http_dir, monkeypatch):
    served, url = http_dir
    write_mnist_like(served)
    monkeypatch.setitem(_idx._MD5, "fashion-mnist",
                        {f: md5(served / f) for f in FASHION_FILES})
    target = data.download_fashion_mnist(mirrors=[url], progress=False)
    assert target == data.cache_dir("fashion-mnist")
    assert sorted(p.name for p in target.iterdir()) == sorted(FASHION_FILES)
    assert len(load_fashion_mnist("test", device="cpu")) == 10


# ----------------------------------------------------------------------------------------------
# downloads: MNIST, CIFAR-10, SVHN from a loopback server
# ----------------------------------------------------------------------------------------------
def test_mnist_download(isolated, http_dir, dead_url, monkeypatch):
    served, url = http_dir
    arrays = write_mnist_like(served, n_train=30, n_test=12)
    monkeypatch.setitem(_idx._MD5, "mnist", {p.name: md5(p) for p in served.iterdir()})
    root = isolated / "cache"
    # a dead mirror and one without the files (HTTP 404) are tried first and skipped
    ds = load_mnist("train", download=True, mirrors=[dead_url, url + "nothing/", url], root=root,
                    progress=False, normalize=False, device="cpu")
    assert ds.x.shape == (30, 1, 28, 28) and ds.name == "mnist/train"
    assert torch.equal(ds.y, torch.from_numpy(arrays["train"][1].astype(np.int64)))
    assert torch.allclose(ds.x[:, 0], torch.from_numpy(arrays["train"][0]).float() / 255)
    assert sorted(p.name for p in root.iterdir()) == ["train-images-idx3-ubyte.gz",
                                                      "train-labels-idx1-ubyte.gz"]
    # now offline: the files are found in root
    assert len(load_mnist("train", root=root, device="cpu")) == 30
    dt = load_mnist("test", download=True, mirrors=url, root=root, progress=False, flatten=True,
                    device="cpu")
    assert dt.x.shape == (12, 784) and dt.num_classes == 10


def test_mnist_checksum_mismatch_leaves_nothing(isolated, http_dir, monkeypatch):
    served, url = http_dir
    write_mnist_like(served)
    monkeypatch.setitem(_idx._MD5, "mnist", {p.name: "0" * 32 for p in served.iterdir()})
    root = isolated / "cache"
    with pytest.raises(DataFileError, match="MD5") as info:
        load_mnist("train", download=True, mirrors=[url], root=root, progress=False)
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert list(root.iterdir()) == []  # neither the file nor a .part file


def test_mnist_unreachable_mirror(isolated, dead_url, http_dir):
    root = isolated / "cache"
    with pytest.raises(DownloadError) as info:
        load_mnist("train", download=True, mirrors=[dead_url, http_dir[1]], root=root,
                   progress=False)
    assert isinstance(info.value, RuntimeError)
    msg = str(info.value)
    for f in (dead_url + "train-images-idx3-ubyte.gz", "HTTP 404", str(root),
              "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "GNILAB_DATA"):
        assert f in msg, (f, msg)
    assert not root.exists() or not any(root.iterdir())


def test_mnist_missing_without_download(isolated):
    with pytest.raises(DataFileError) as info:
        load_mnist("test")
    msg = str(info.value)
    for f in (str(data.cache_dir("mnist")), "t10k-images-idx3-ubyte.gz", "GNILAB_DATA",
              "download=True"):
        assert f in msg, (f, msg)


def _cifar_tarball(path: Path, n_per_batch=4, n_test=3, seed=0):
    rng = np.random.default_rng(seed)
    batches = {}
    with tarfile.open(path, "w:gz") as tar:
        def add(name, obj, protocol):
            blob = pickle.dumps(obj, protocol=protocol)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))

        add("batches.meta", {b"label_names": [b"airplane"]}, 2)
        for name, n in [(f"data_batch_{i}", n_per_batch) for i in (3, 1, 2, 5, 4)] + [
                ("test_batch", n_test)]:
            d = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, n).tolist(),
                 b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
            add(name, d, 2 if name != "test_batch" else pickle.HIGHEST_PROTOCOL)
            batches[name] = d
    return batches


def test_cifar10_download(isolated, http_dir, monkeypatch):
    served, url = http_dir
    batches = _cifar_tarball(served / "cifar-10-python.tar.gz")
    monkeypatch.setitem(_idx._MD5, "cifar10",
                        {"cifar-10-python.tar.gz": md5(served / "cifar-10-python.tar.gz")})
    root = isolated / "cache"
    ds = load_cifar10("train", download=True, mirrors=[url], root=root, progress=False,
                      normalize=False, device="cpu")
    assert ds.x.shape == (20, 3, 32, 32) and ds.y.dtype == torch.int64
    order = [f"data_batch_{i}" for i in range(1, 6)]  # batch order, not archive order
    labels = np.concatenate([batches[b][b"labels"] for b in order])
    pixels = np.concatenate([batches[b][b"data"] for b in order])
    assert np.array_equal(ds.y.numpy(), labels)
    assert torch.allclose(ds.x, torch.from_numpy(pixels).float().reshape(-1, 3, 32, 32) / 255)
    dt = load_cifar10("test", root=root, device="cpu")
    assert dt.x.shape == (3, 3, 32, 32) and dt.classes == data.CIFAR10_CLASSES
    assert np.array_equal(dt.y.numpy(), batches["test_batch"][b"labels"])
    assert len(load_cifar10("train", root=root, limit=6, device="cpu")) == 6


def test_cifar10_extracted_dir_and_safe_unpickling(isolated):
    root = isolated / "c"
    tarpath = isolated / "tmp.tar.gz"
    _cifar_tarball(tarpath)
    with tarfile.open(tarpath) as tar:
        tar.extractall(root, filter="data")
    (root / "cifar-10-batches-py").rename(root / "x")  # the directory itself is the root's child
    (root / "x").rename(root / "cifar-10-batches-py")
    assert load_cifar10("test", root=root, device="cpu").x.shape == (3, 3, 32, 32)

    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    (root / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(DataFileError, match="not allowed"):
        load_cifar10("test", root=root, device="cpu")


def test_svhn_download(isolated, http_dir, dead_url, monkeypatch):
    import scipy.io

    served, url = http_dir
    rng = np.random.default_rng(0)
    mats = {}
    for split, n in (("train", 7), ("test", 5)):
        X = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
        y[0, 0] = 10
        scipy.io.savemat(served / f"{split}_32x32.mat", {"X": X, "y": y})
        mats[split] = (X, y)
    monkeypatch.setitem(_idx._MD5, "svhn", {f"{s}_32x32.mat": md5(served / f"{s}_32x32.mat")
                                            for s in ("train", "test")})
    root = isolated / "cache"
    ds = load_svhn("train", download=True, mirrors=[url], root=root, progress=False,
                   normalize=False, device="cpu")
    X, y = mats["train"]
    assert ds.x.shape == (7, 3, 32, 32) and ds.y.dtype == torch.int64
    expect_y = y[:, 0].astype(np.int64) % 10
    assert ds.y[0].item() == 0 and np.array_equal(ds.y.numpy(), expect_y)
    assert torch.allclose(ds.x, torch.from_numpy(X).permute(3, 2, 0, 1).float() / 255)
    assert [p.name for p in root.iterdir()] == ["train_32x32.mat"]
    # the test file is not there yet and the mirror is dead: an actionable error
    with pytest.raises(DownloadError) as info:
        load_svhn("test", download=True, mirrors=[dead_url], root=root, progress=False)
    assert str(root) in str(info.value) and "test_32x32.mat" in str(info.value)
    dt = load_svhn("test", download=True, mirrors=[url], root=root, progress=False, device="cpu")
    assert dt.x.shape == (5, 3, 32, 32) and dt.name == "svhn/test"


@pytest.mark.parametrize("loader, fname, payload", [
    (load_cifar10, "cifar-10-python.tar.gz", b"\x1f\x8b\x08\x00" + bytes(50)),
    (load_svhn, "train_32x32.mat", b"MATLAB 5.0 garbage" + bytes(20)),
], ids=["cifar10", "svhn"])
def test_corrupt_file_error_names_the_file(isolated, loader, fname, payload):
    root = isolated / "d"
    root.mkdir()
    (root / fname).write_bytes(payload)
    with pytest.raises(DataFileError, match=fname.replace(".", r"\.")):
        loader("train", root=root)


# ----------------------------------------------------------------------------------------------
# offline sets
# ----------------------------------------------------------------------------------------------
def test_load_digits():
    ds = load_digits(device="cpu")
    assert ds.x.shape == (1797, 64) and ds.y.shape == (1797,) and ds.y.dtype == torch.int64
    assert ds.num_classes == 10 and set(ds.y.tolist()) == set(range(10))
    assert abs(ds.x.double().mean().item()) < 1e-5 and abs(ds.x.double().std().item() - 1) < 1e-3
    raw = load_digits(normalize=False, device="cpu")
    assert float(raw.x.min()) == 0.0 and float(raw.x.max()) == 1.0


def test_load_mnist1d():
    state = np.random.get_state()
    ds = load_mnist1d(num_samples=500, split="train", device="cpu")
    dt = load_mnist1d(num_samples=500, split="test", device="cpu")
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1])  # global RNG untouched
    assert ds.x.shape == (400, 40) and dt.x.shape == (100, 40)
    assert ds.y.dtype == torch.int64 and ds.num_classes == 10
    again = load_mnist1d(num_samples=500, device="cpu")
    assert torch.equal(again.x, ds.x)
    other = load_mnist1d(num_samples=500, seed=1, device="cpu")
    assert not torch.equal(other.x, ds.x)
    with pytest.raises(ValueError, match="train_split"):
        load_mnist1d(train_split=1.5)


def test_load_mnist1d_never_downloads(monkeypatch, tmp_path):
    import urllib.request

    import requests

    def no_network(*args, **kwargs):
        raise AssertionError("load_mnist1d tried to use the network")

    monkeypatch.setattr(requests, "get", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.chdir(tmp_path)  # mnist1d's get_dataset would write a pickle here
    ds = load_mnist1d(num_samples=100, train_split=0.5, seed=7, split="test", device="cpu")
    assert ds.x.shape == (50, 40) and list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------
# synthetic sets
# ----------------------------------------------------------------------------------------------
def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_sinusoids():
    n = 200
    ds = make_sinusoids(n, generator=_gen(0), device="cpu", dtype=torch.float64)
    assert ds.x.shape == (n, 1) and ds.y.shape == (n, 1)
    assert torch.allclose(ds.x[:, 0], torch.arange(n, dtype=torch.float64) / n)
    # With t_i = i/n, sin(2 pi k t + phase) puts all of its energy in DFT bins k and n-k, with
    # |Y_k| = n/2; so the spectrum is n/2 exactly at k = 5, 10, ..., 50 and zero elsewhere.
    spec = torch.fft.rfft(ds.y[:, 0]).abs()
    expect = torch.zeros_like(spec)
    expect[5:55:5] = n / 2
    assert torch.allclose(spec, expect, atol=1e-9)
    assert torch.equal(make_sinusoids(n, generator=_gen(0), device="cpu",
                                      dtype=torch.float64).y, ds.y)
    assert not torch.equal(make_sinusoids(n, generator=_gen(1), device="cpu",
                                          dtype=torch.float64).y, ds.y)
    assert make_sinusoids(50, freqs=(1,), device="cpu").y.shape == (50, 1)


def test_rotated_gaussian_covariance():
    n = 20000
    ds = make_rotated_gaussian_2d(n, generator=_gen(0), device="cpu", dtype=torch.float64)
    assert ds.x.shape == (n, 2) and ds.y.shape == (n,) and not ds.y.any()
    x = ds.x
    cov = x.T @ x / n  # the mean is known to be 0
    l1, l2 = 1e-3, 1e-4
    u1 = torch.tensor([1.0, -1.0], dtype=torch.float64) / math.sqrt(2)
    u2 = torch.tensor([1.0, 1.0], dtype=torch.float64) / math.sqrt(2)
    # Tolerances are 5 standard errors at n = 20000: a Gaussian variance estimate has standard
    # error var * sqrt(2/n); the cross moment along the two axes has sqrt(l1 * l2 / n); the
    # principal direction's angle error is about that cross moment / (l1 - l2).
    assert abs(u1 @ cov @ u1 - l1) < 5 * l1 * math.sqrt(2 / n)
    assert abs(u2 @ cov @ u2 - l2) < 5 * l2 * math.sqrt(2 / n)
    assert abs(u1 @ cov @ u2) < 5 * math.sqrt(l1 * l2 / n)
    evals, evecs = torch.linalg.eigh(cov)
    assert abs(evals[1] - l1) < 5 * l1 * math.sqrt(2 / n)
    assert abs(evals[0] - l2) < 5 * l2 * math.sqrt(2 / n)
    angle = math.acos(min(1.0, abs(float(evecs[:, 1] @ u1))))
    assert angle < 5 * math.sqrt(l1 * l2 / n) / (l1 - l2)
    # determinism, and the std parametrisation is the same distribution
    same = make_rotated_gaussian_2d(n, generator=_gen(0), device="cpu", dtype=torch.float64)
    assert torch.equal(same.x, x)
    by_std = make_rotated_gaussian_2d(n, stds=(math.sqrt(l1), math.sqrt(l2)), generator=_gen(0),
                                      device="cpu", dtype=torch.float64)
    assert torch.allclose(by_std.x, x)
    with pytest.raises(ValueError, match="variances"):
        make_rotated_gaussian_2d(variances=(1e-3, -1.0))
    with pytest.raises(ValueError, match="at most one"):
        make_rotated_gaussian_2d(variances=(1, 1), stds=(1, 1))


def test_linear_regression():
    n, d = 1000, 10
    ds, w = make_linear_regression(n, d, noise_std=0.1, generator=_gen(0), device="cpu",
                                   dtype=torch.float64)
    assert ds.x.shape == (n, d) and ds.y.shape == (n, 1) and w.shape == (d, 1)
    resid = ds.y - ds.x @ w
    # the sample std of n Gaussian residuals has standard error ~ sigma / sqrt(2n); 5 of them
    assert abs(resid.std().item() - 0.1) < 5 * 0.1 / math.sqrt(2 * n)
    ds2, w2 = make_linear_regression(n, d, noise_std=0.1, generator=_gen(0), device="cpu",
                                     dtype=torch.float64)
    assert torch.equal(ds2.x, ds.x) and torch.equal(ds2.y, ds.y) and torch.equal(w2, w)
    exact, w0 = make_linear_regression(20, 3, noise_std=0.0, generator=_gen(1), device="cpu")
    assert torch.allclose(exact.y, exact.x @ w0, atol=1e-6)
    with pytest.raises(ValueError, match="noise_std"):
        make_linear_regression(noise_std=-1.0)


def test_separable_2d():
    ds = make_separable_2d(2000, generator=_gen(0), device="cpu")
    assert ds.x.shape == (2000, 2) and ds.y.dtype == torch.int64 and ds.num_classes == 2
    assert torch.equal(ds.y, (ds.x[:, 0] >= ds.x[:, 1]).long())
    assert ds.x.min() >= -2 and ds.x.max() <= 2
    assert 0.4 < ds.y.double().mean().item() < 0.6  # P(label 1) = 1/2; 5 SE at n=2000 is 0.056
    assert torch.equal(make_separable_2d(2000, generator=_gen(0), device="cpu").x, ds.x)


def test_corrupt_labels():
    y = torch.arange(1000) % 10
    new, mask = corrupt_labels(y, 300, 10, generator=_gen(0))
    assert mask.dtype == torch.bool and int(mask.sum()) == 300
    assert torch.equal(new[~mask], y[~mask]) and new.dtype == torch.int64
    assert new.min() >= 0 and new.max() < 10
    new2, mask2 = corrupt_labels(y, 300, 10, generator=_gen(0))
    assert torch.equal(new2, new) and torch.equal(mask2, mask)
    ex, exmask = corrupt_labels(y, 300, 10, generator=_gen(0), exclude_true=True)
    assert (ex[exmask] != y[exmask]).all() and torch.equal(ex[~exmask], y[~exmask])
    same, m0 = corrupt_labels(y, 0, 10)
    assert torch.equal(same, y) and not m0.any()
    # all corrupted without exclusion: the number that keep their label is Binomial(N, 1/10)
    big = torch.zeros(10000, dtype=torch.long)
    allnew, allmask = corrupt_labels(big, 10000, 10, generator=_gen(3))
    kept = int((allnew == big).sum())
    assert allmask.all() and abs(kept - 1000) < 5 * math.sqrt(10000 * 0.1 * 0.9)
    for k in (-1, 1001):
        with pytest.raises(ValueError, match=r"k must be an integer in \[0, 1000\]"):
            corrupt_labels(y, k, 10)
    with pytest.raises(ValueError, match="num_classes"):
        corrupt_labels(y, 5, 5)  # labels up to 9
    with pytest.raises(TypeError, match="y must be"):
        corrupt_labels(y.float(), 5, 10)


# ----------------------------------------------------------------------------------------------
# ArrayDataset
# ----------------------------------------------------------------------------------------------
def _toy(n=23):
    return ArrayDataset(x=torch.arange(n * 2, dtype=torch.float32).reshape(n, 2),
                        y=torch.arange(n) % 3, name="toy", classes=("a", "b", "c"))


def test_batches_partition_and_sizes():
    ds = _toy(23)
    parts = ds.batches(5, generator=_gen(0))
    assert [len(p) for p in parts] == [5, 5, 5, 5, 3]
    assert all(p.dtype == torch.int64 and p.device == ds.x.device for p in parts)
    assert torch.equal(torch.sort(torch.cat(parts)).values, torch.arange(23))
    assert not torch.equal(torch.cat(parts), torch.arange(23))  # shuffled
    dropped = ds.batches(5, generator=_gen(0), drop_last=True)
    assert [len(p) for p in dropped] == [5, 5, 5, 5]
    assert all(torch.equal(a, b) for a, b in zip(dropped, parts))
    assert [len(p) for p in ds.batches(23, drop_last=True)] == [23]
    assert ds.batches(30, drop_last=True) == []
    full = ds.batches(None, shuffle=False)
    assert len(full) == 1 and torch.equal(full[0], torch.arange(23))
    ordered = ds.batches(10, shuffle=False)
    assert torch.equal(torch.cat(ordered), torch.arange(23))
    again = ds.batches(5, generator=_gen(0))
    assert all(torch.equal(a, b) for a, b in zip(again, parts))
    other = ds.batches(5, generator=_gen(1))
    assert not all(torch.equal(a, b) for a, b in zip(other, parts))
    xb, yb = ds.x[parts[0]], ds.y[parts[0]]
    assert xb.shape == (5, 2) and yb.shape == (5,)


def test_batches_bad_size():
    ds = _toy()
    for bad in (0, -3):
        with pytest.raises(ValueError, match="batch_size"):
            ds.batches(bad)
    with pytest.raises(TypeError, match="batch_size"):
        ds.batches(2.5)


def test_array_dataset_subset_to_and_checks():
    ds = _toy(10)
    assert len(ds) == 10 and ds.num_classes == 3 and "toy" in repr(ds)
    assert torch.equal(ds.subset(slice(2, 5)).y, ds.y[2:5])
    idx = torch.tensor([7, 1, 1])
    assert torch.equal(ds.subset(idx).x, ds.x[idx])
    mask = ds.y == 0
    sub = ds.subset(mask)
    assert len(sub) == int(mask.sum()) and (sub.y == 0).all() and sub.classes == ds.classes
    with pytest.raises(ValueError, match="mask"):
        ds.subset(torch.ones(3, dtype=torch.bool))
    d64 = ds.to(dtype=torch.float64)
    assert d64.x.dtype == torch.float64 and d64.y.dtype == torch.int64
    reg = ArrayDataset(x=torch.zeros(4, 1), y=torch.zeros(4, 1), name="r")
    assert reg.num_classes is None and reg.to("cpu", torch.float64).y.dtype == torch.float64
    with pytest.raises(ValueError, match="same number"):
        ArrayDataset(x=torch.zeros(3, 2), y=torch.zeros(4), name="bad")


def test_default_device_and_dtype():
    ds = make_separable_2d(10, generator=_gen(0))
    assert ds.x.device == config.resolve_device(None) and ds.x.dtype == torch.get_default_dtype()
    cpu = make_separable_2d(10, generator=_gen(0), device="cpu")
    assert torch.equal(_cpu(ds.x), cpu.x)  # sampled on the CPU, then moved


# ----------------------------------------------------------------------------------------------
# bad inputs
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("loader", [load_fashion_mnist, load_mnist, load_cifar10, load_svhn])
def test_bad_split_and_limit(loader):
    with pytest.raises(ValueError, match="split") as info:
        loader("val")
    assert "'val'" in str(info.value)
    for bad in (0, -5):
        with pytest.raises(ValueError, match="limit"):
            loader("train", limit=bad)
    with pytest.raises(TypeError, match="dtype"):
        loader("train", dtype=torch.int32)


def test_bad_synthetic_args():
    with pytest.raises(ValueError, match="n must"):
        make_sinusoids(0)
    with pytest.raises(TypeError, match="generator"):
        make_separable_2d(5, generator=np.random.default_rng(0))
    with pytest.raises(ValueError, match="split"):
        load_mnist1d(split="val")
    with pytest.raises(ValueError, match="mirrors"):
        _idx._normalise_mirrors("mnist", [])


@needs_fashion
def test_subset_seed_draws_a_random_subset_of_the_real_files():
    first = data.load_fashion_mnist("test", limit=50, device="cpu")
    full = data.load_fashion_mnist("test", device="cpu")
    sub = data.load_fashion_mnist("test", limit=50, device="cpu", subset_seed=4)
    again = data.load_fashion_mnist("test", limit=50, device="cpu", subset_seed=4)
    other = data.load_fashion_mnist("test", limit=50, device="cpu", subset_seed=5)
    assert torch.equal(first.y, full.y[:50])                   # no seed: the first examples
    assert torch.equal(sub.x, again.x) and not torch.equal(sub.x, other.x)
    # every kept row is a distinct row of the file (matched through its exact pixels; the test
    # split holds no duplicate images)
    rows = (full.x.reshape(len(full.y), -1)[None] == sub.x.reshape(50, 1, -1)).all(-1)
    assert (rows.sum(1) >= 1).all()
    idx = rows.float().argmax(1)
    assert len(set(idx.tolist())) == 50 and torch.equal(full.y[idx], sub.y)
    assert (idx.diff() > 0).all()                               # in file order
    assert len(data.load_fashion_mnist("test", limit=20_000, subset_seed=1, device="cpu")) == 10_000
    with pytest.raises(ValueError, match="subset_seed must be an integer >= 0"):
        data.load_fashion_mnist("test", limit=5, subset_seed=-1)
