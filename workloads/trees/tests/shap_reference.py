"""Reference SHAP values from the `shap` package for a model exported by shopstream-trees.

Reads JSON from stdin: {"model": <TreeEnsemble::to_shap_dict()>, "rows": [[...], ...]}.
Writes JSON to stdout: {"shap": [[...], ...], "expected_value": float, "version": str}.
"""
import json
import sys

import numpy as np
import shap


def shap_model(m):
    """shap's dict-of-arrays tree model from TreeEnsemble::to_shap_dict() (also used by
    bench/trees/reference.py)."""
    trees = []
    for t in m["trees"]:
        trees.append({
            "children_left": np.array(t["children_left"], dtype=np.int32),
            "children_right": np.array(t["children_right"], dtype=np.int32),
            "children_default": np.array(t["children_default"], dtype=np.int32),
            "features": np.array(t["features"], dtype=np.int32),
            "thresholds": np.array(t["thresholds"], dtype=np.float64),
            "values": np.array(t["values"], dtype=np.float64).reshape(-1, 1),
            "node_sample_weight": np.array(t["node_sample_weight"], dtype=np.float64),
        })
    return {"trees": trees, "base_offset": m["base_offset"], "tree_output": m["tree_output"]}


def main():
    req = json.load(sys.stdin)
    model = shap_model(req["model"])
    explainer = shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")
    rows = np.array(req["rows"], dtype=np.float64)
    values = explainer.shap_values(rows, check_additivity=False)
    values = np.asarray(values).reshape(rows.shape[0], rows.shape[1])
    ev = np.asarray(explainer.expected_value).reshape(-1)[0]
    json.dump({"shap": values.tolist(), "expected_value": float(ev), "version": shap.__version__},
              sys.stdout)


if __name__ == "__main__":
    main()
