"""shap.KernelExplainer on an MLP exported by the Rust test (tests/kernel_shap_oracle.rs).

stdin: {"model": <MlpModel JSON>, "background": [[...]], "x": [[...]], "nsamples": int or null}
stdout: {"values": [[...]], "base": float}
The network is evaluated in float32 exactly as the Rust model does (scale, matmul, ReLU, sigmoid).
"""
import json
import sys

import numpy as np
import shap


def main():
    req = json.load(sys.stdin)
    m = req["model"]
    sizes = m["sizes"]
    ws = [np.asarray(w, dtype=np.float32).reshape(sizes[i], sizes[i + 1]) for i, w in enumerate(m["weights"])]
    bs = [np.asarray(b, dtype=np.float32) for b in m["biases"]]
    lo = np.asarray(m["scaling"]["lo"], dtype=np.float64)
    hi = np.asarray(m["scaling"]["hi"], dtype=np.float64)

    def f(x):
        x = np.asarray(x, dtype=np.float64)
        span = np.where(hi > lo, hi - lo, 1.0)
        a = np.where(hi > lo, (np.clip(x, lo, hi) - lo) / span, 0.0).astype(np.float32)
        for i, (w, b) in enumerate(zip(ws, bs)):
            z = a @ w + b
            a = np.maximum(z, 0) if i + 1 < len(ws) else z
        z = a[:, 0].astype(np.float64)
        return 1.0 / (1.0 + np.exp(-z))

    bg = np.asarray(req["background"], dtype=np.float64)
    x = np.asarray(req["x"], dtype=np.float64)
    np.random.seed(0)
    ex = shap.KernelExplainer(f, bg)
    kw = {"l1_reg": False, "silent": True}
    if req.get("nsamples") is not None:
        kw["nsamples"] = req["nsamples"]
    vals = ex.shap_values(x, **kw)
    json.dump({"values": np.asarray(vals).tolist(), "base": float(ex.expected_value)}, sys.stdout)


if __name__ == "__main__":
    main()
