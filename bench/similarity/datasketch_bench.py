"""datasketch side of the similarity benchmark (run by `cargo bench -p shopstream-similarity`).

Usage: python datasketch_bench.py TOKENS.json REPEATS
TOKENS.json: {"num_perm": 128, "bands": b, "rows": r, "sets": [[token, ...], ...]}
Prints JSON with the best-of-REPEATS seconds of each phase, using datasketch's fastest
reasonable pure-CPU API: MinHash.bulk (update_batch per set, one shared permutation state),
MinHashLSH with the same (b, r) filled in an insertion_session, then one query per set.
"""
import json
import sys
import time

import datasketch
from datasketch import MinHash, MinHashLSH


def main():
    path, repeats = sys.argv[1], int(sys.argv[2])
    with open(path) as f:
        req = json.load(f)
    data = [[t.encode("utf-8") for t in s] for s in req["sets"]]
    k, b, r = req["num_perm"], req["bands"], req["rows"]
    best = {"signatures": float("inf"), "index": float("inf"), "query": float("inf")}
    candidates = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        mhs = MinHash.bulk(data, num_perm=k, seed=1)
        t1 = time.perf_counter()
        lsh = MinHashLSH(num_perm=k, params=(b, r))
        with lsh.insertion_session() as session:
            for i, m in enumerate(mhs):
                session.insert(i, m, check_duplication=False)
        t2 = time.perf_counter()
        candidates = 0
        for m in mhs:
            candidates += len(lsh.query(m))
        t3 = time.perf_counter()
        best["signatures"] = min(best["signatures"], t1 - t0)
        best["index"] = min(best["index"], t2 - t1)
        best["query"] = min(best["query"], t3 - t2)
    best["candidates"] = candidates
    best["version"] = datasketch.__version__ if hasattr(datasketch, "__version__") else "?"
    best["scheme"] = mhs[0].scheme if mhs and hasattr(mhs[0], "scheme") else "legacy"
    json.dump(best, sys.stdout)


if __name__ == "__main__":
    main()
