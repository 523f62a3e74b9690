r"""The log-density table behind the fast maximum-likelihood fit of :func:`gnilab.stable.fit`.

``log f0(sinh(s); alpha, beta)`` of the standard S0 law on the grid

* alpha = 0.40, 0.45, ..., 2.00 (33 values),
* beta = -1.0, -0.9, ..., 1.0 (21 values; the file stores beta >= 0, the rest follows from the
  symmetry :math:`f(z;\beta) = f(-z;-\beta)`),
* s = asinh(z) = -27, -26.875, ..., 27 (433 values),

computed with the Nolan-integral quadrature of :mod:`gnilab.stable._density` (20
Gauss-Legendre nodes per side; ~1.4 s on one core) and floored at -1e4. It is shipped as
package data (``_ml_table.npz``, ~1 MB) rather than built on first use, so that the
first fit in a process costs no quadrature. Regenerate it after a change to the density code
with::

    python -m gnilab.stable._ml_table          # rewrites gnilab/stable/_ml_table.npz

``tests/test_stable.py`` recomputes a random sample of entries and compares them with the
file, so a stale table fails the tests.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from . import _density as _sd

ALPHA = np.round(np.arange(0.4, 2.0001, 0.05), 10)
BETA = np.round(np.linspace(-1.0, 1.0, 21), 10)
S = np.linspace(-27.0, 27.0, 433)          # s = asinh(z), z the S0-standardised value
NODES = 20                                  # Gauss-Legendre nodes per side of the peak
FLOOR = -1e4
VERSION = 1                                 # bump when the grid or the method changes
FILE = Path(__file__).with_name("_ml_table.npz")
_HALF = BETA >= 0


def compute(alpha_idx=None, beta_idx=None, s_idx=None) -> np.ndarray:
    """Table entries at the given index arrays (into :data:`ALPHA`, the beta >= 0 part of
    :data:`BETA`, :data:`S`; each 1-D, broadcast together), or the whole beta >= 0 half
    [33, 11, 433] when all are None. Unfloored log-densities (float64)."""
    if alpha_idx is None:
        A, B, Sg = np.meshgrid(ALPHA, BETA[_HALF], S, indexing="ij")
    else:
        A = ALPHA[np.asarray(alpha_idx)]
        B = BETA[_HALF][np.asarray(beta_idx)]
        Sg = S[np.asarray(s_idx)]
    z = torch.tensor(np.sinh(Sg).reshape(-1))
    lp = _sd.std_logpdf(z, torch.tensor(A.reshape(-1)), torch.tensor(B.reshape(-1)), 0, NODES)
    return lp.numpy().reshape(A.shape)


@lru_cache(maxsize=1)
def load() -> np.ndarray:
    """The full table [33, 21, 433] (both signs of beta), floored at -1e4, from the package
    file; a clear error when the file is missing or was written for another grid."""
    if not FILE.exists():
        raise FileNotFoundError(f"{FILE} is missing: run `python -m gnilab.stable._ml_table` to "
                                "generate the maximum-likelihood table")
    with np.load(FILE) as f:
        half, version = f["logpdf"], int(f["version"])
        grid_ok = all(np.array_equal(f[k], v) for k, v in
                      (("alpha", ALPHA), ("beta", BETA[_HALF]), ("s", S)))
    if version != VERSION or not grid_ok:
        raise RuntimeError(f"{FILE} was written for another grid or method (version {version}, "
                           f"expected {VERSION}): regenerate it with "
                           "`python -m gnilab.stable._ml_table`")
    full = np.empty((len(ALPHA), len(BETA), len(S)))
    full[:, _HALF, :] = half
    full[:, ~_HALF, :] = half[:, 1:, ::-1][:, ::-1, :]       # beta -> -beta, s -> -s
    return np.maximum(full, FLOOR)


def write(path: Path = FILE) -> Path:
    """Compute the beta >= 0 half and write it with its grid and version."""
    np.savez_compressed(path, logpdf=compute(), alpha=ALPHA, beta=BETA[_HALF], s=S,
                        version=np.int64(VERSION))
    return path


if __name__ == "__main__":
    print(f"wrote {write()}")
