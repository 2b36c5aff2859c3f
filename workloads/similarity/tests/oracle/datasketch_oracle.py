"""Reference values from the `datasketch` package for the Rust tests of shopstream-similarity.

Reads a JSON request on stdin, writes a JSON answer on stdout.
  {"task": "minhash", "a": [...], "b": [...], "hashes": {token: u32}, "sets": [[token, ...]]}
      -> {"signatures": [[u32, ...]], "jaccard": [[i, j, est], ...]}
     Signatures by datasketch.MinHash(scheme="affine32") with the given permutations, hashing
     each token with the given 32-bit hash (so only the MinHash scheme itself is compared).
  {"task": "params", "cases": [[threshold, num_perm, fp_weight, fn_weight], ...]}
      -> {"params": [[b, r], ...]} from datasketch.lsh._optimal_param.
"""
import json
import sys

import numpy as np
from datasketch import MinHash
from datasketch.lsh import _optimal_param


def minhash(req):
    table = {k.encode("utf-8"): v for k, v in req["hashes"].items()}
    perms = (np.array(req["a"], dtype=np.uint32), np.array(req["b"], dtype=np.uint32))
    sigs = []
    for tokens in req["sets"]:
        m = MinHash(
            num_perm=len(req["a"]),
            scheme="affine32",
            permutations=perms,
            hashfunc=lambda t: table[t],
        )
        m.update_batch([t.encode("utf-8") for t in tokens])
        sigs.append(m)
    pairs = []
    for i in range(len(sigs)):
        for j in range(i + 1, len(sigs)):
            pairs.append([i, j, sigs[i].jaccard(sigs[j])])
    return {"signatures": [[int(v) for v in m.hashvalues] for m in sigs], "jaccard": pairs}


def params(req):
    return {"params": [list(_optimal_param(t, n, fp, fn)) for t, n, fp, fn in req["cases"]]}


def main():
    req = json.load(sys.stdin)
    out = {"minhash": minhash, "params": params}[req["task"]](req)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
