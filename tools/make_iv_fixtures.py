#!/usr/bin/python3
"""Writes tests/fixtures/iv/ for tests/test_interventions.c.

  orthogonal_random.safetensors  random (non-initial) `original` tensors with an orthogonal
      `base`, and the effective weight computed by torch's own
      torch.nn.utils.parametrizations.orthogonal (float64), for a square matrix (matrix_exp
      map, with a norm large enough to need scaling and squaring), a tall one (householder
      map) and a tall one whose diagonal truncates to 2, -1 and 0 (int(O_jj) column signs).
      Also numpy.random.RandomState(1).randn(1, 4, 6) (NoiseIntervention's noise).
  <case>.inputs.safetensors      copies of pyvene-exported inputs of golden cases (their
      `iv0.rotate_layer.*` tensors), when the golden folder is given.

Usage: /usr/bin/python3 tools/make_iv_fixtures.py [GOLDEN_CASES_DIR]
(tested with Debian's python3-torch 1.13 and numpy 1.24; needs no safetensors package)."""
import json
import os
import shutil
import struct
import sys

import numpy as np
import torch
from torch.nn.utils.parametrizations import orthogonal

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "iv")
GOLDEN_CASES = ["iv_rotated_space_subspace", "iv_lowrank_rank4_subspace_partition", "t101_das_lowrank_forward"]


def save_safetensors(path, tensors):
    header, blobs, at = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dtype = {np.dtype("float32"): "F32", np.dtype("float64"): "F64"}[arr.dtype]
        raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


class Layer(torch.nn.Module):
    def __init__(self, n, m):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(n, m, dtype=torch.float64))
        torch.nn.init.orthogonal_(self.weight)


def torch_weight(original, base):
    """original (n x m) and base (n x n) float32 arrays -> torch's effective weight (float64)."""
    n, m = original.shape
    layer = orthogonal(Layer(n, m))
    p = layer.parametrizations.weight
    with torch.no_grad():
        p.original.copy_(torch.from_numpy(original.astype(np.float64)))
        p[0].base.copy_(torch.from_numpy(base.astype(np.float64)))
        return layer.weight.detach().numpy().copy()


def random_orthogonal(g, n):
    q, r = np.linalg.qr(g.standard_normal((n, n)))
    return (q * np.sign(np.diag(r))).astype(np.float32)


def main():
    os.makedirs(OUT, exist_ok=True)
    g = np.random.default_rng(20240611)
    t = {}
    # square 16 x 16: entries ~ N(0, 1.5^2) so |A|_1 is well above theta_13 (squarings needed)
    o = (1.5 * g.standard_normal((16, 16))).astype(np.float32)
    b = random_orthogonal(g, 16)
    t["sq.original"], t["sq.base"], t["sq.weight"] = o, b, torch_weight(o, b).astype(np.float32)
    # tall 12 x 5 with a +-1 diagonal (what training leaves it at)
    o = (0.7 * g.standard_normal((12, 5))).astype(np.float32)
    for j, s in enumerate([-1, 1, -1, -1, 1]):
        o[j, j] = s
    b = random_orthogonal(g, 12)
    t["tall.original"], t["tall.base"], t["tall.weight"] = o, b, torch_weight(o, b).astype(np.float32)
    # tall 8 x 3 whose diagonal truncates to 2, -1, 0
    o = (0.5 * g.standard_normal((8, 3))).astype(np.float32)
    o[0, 0], o[1, 1], o[2, 2] = 2.7, -1.2, 0.5
    b = random_orthogonal(g, 8)
    t["trunc.original"], t["trunc.base"], t["trunc.weight"] = o, b, torch_weight(o, b).astype(np.float32)
    t["noise.randn"] = np.random.RandomState(1).randn(1, 4, 6)
    save_safetensors(os.path.join(OUT, "orthogonal_random.safetensors"), t)

    if len(sys.argv) > 1:
        for case in GOLDEN_CASES:
            shutil.copyfile(os.path.join(sys.argv[1], case, "inputs.safetensors"),
                            os.path.join(OUT, case + ".inputs.safetensors"))
    print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
