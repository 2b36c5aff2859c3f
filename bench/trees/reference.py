"""Python reference timings for the shopstream-trees benchmark (run by the Rust bench).

Reads the bench directory written by `cargo bench -p shopstream-trees --bench trees`:
  meta.json        shapes and the shared hyper-parameters
  x_train.f64 ...  row-major little-endian float64 matrices / label vectors
  rf_model.json, gbdt_model.json   our models in shap's dict-of-arrays form
Prints one JSON object with seconds and AUCs (XGBoost, and unless only_gbdt the random forest,
one decision tree and TreeSHAP). Everything runs single-threaded
(n_jobs=1, nthread=meta["threads"], which the Rust side sets to its own thread count, 1).
The XGBoost fit is timed meta["repeat"] times and the best kept, as on the Rust side; each
time on a fresh DMatrix built outside the timing, so the quantile sketch and binning happen
inside xgb.train, as our binning happens inside fit_gbdt. xgb_fit_cached_bins_s is the same
training with the bins already cached on the DMatrix (boosting alone), for reference.
"""
import json
import os
import sys
import time

import numpy as np

# One conversion of our exported models into shap's form, shared with the TreeSHAP tests.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../workloads/trees/tests"))
from shap_reference import shap_model  # noqa: E402


def load(d, name, shape):
    return np.fromfile(os.path.join(d, name), dtype="<f8").reshape(shape)


def shap_dict(path):
    with open(path) as f:
        return shap_model(json.load(f))


def main():
    d = sys.argv[1]
    meta = json.load(open(os.path.join(d, "meta.json")))
    n_tr, n_te, f, n_ex = meta["n_train"], meta["n_test"], meta["n_features"], meta["n_explain"]
    x_tr = load(d, "x_train.f64", (n_tr, f))
    y_tr = load(d, "y_train.f64", (n_tr,))
    x_te = load(d, "x_test.f64", (n_te, f))
    y_te = load(d, "y_test.f64", (n_te,))
    x_ex = x_te[:n_ex]

    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score
    import xgboost as xgb
    import shap

    out = {"versions": {"sklearn": __import__("sklearn").__version__, "xgboost": xgb.__version__,
                        "shap": shap.__version__}}
    only_gbdt = meta.get("only_gbdt", False)
    threads = int(meta.get("threads", 1))
    repeat = int(meta.get("repeat", 1))

    gb = meta["gbdt"]
    params = {"objective": "binary:logistic", "tree_method": "hist", "grow_policy": "depthwise",
              "max_depth": gb["max_depth"], "eta": gb["learning_rate"], "lambda": gb["lambda"],
              "min_child_weight": gb["min_child_weight"], "gamma": gb["min_split_gain"],
              "max_bin": gb["max_bins"], "nthread": threads, "verbosity": 0}
    # A fresh DMatrix for every timed fit: XGBoost caches its quantile bins on the DMatrix, and
    # our fit_gbdt bins the raw matrix every time, so both sides do the same work.
    # Also the CPU time of the calling thread (time.thread_time; with nthread=1 XGBoost trains
    # on it), which the Rust side measures the same way.
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeat):
        dtrain = xgb.DMatrix(x_tr, label=y_tr, nthread=threads)
        t, c = time.perf_counter(), time.thread_time()
        booster = xgb.train(params, dtrain, num_boost_round=gb["n_rounds"])
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.thread_time() - c)
    out["xgb_fit_s"] = best
    out["xgb_fit_cpu_s"] = best_cpu
    # For reference: boosting alone, with the bins already cached on the DMatrix.
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeat):
        t, c = time.perf_counter(), time.thread_time()
        xgb.train(params, dtrain, num_boost_round=gb["n_rounds"])
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.thread_time() - c)
    out["xgb_fit_cached_bins_s"] = best
    out["xgb_fit_cached_bins_cpu_s"] = best_cpu
    out["xgb_auc"] = roc_auc_score(y_te, booster.predict(xgb.DMatrix(x_te, nthread=threads)))
    out["xgb_leaves"] = sum(tree.count("leaf=") for tree in booster.get_dump())
    out["xgb_nthread"] = int(json.loads(booster.save_config())["learner"]["generic_param"]["nthread"])
    if only_gbdt:
        json.dump(out, sys.stdout)
        return

    rf = meta["rf"]
    t = time.perf_counter()
    clf = RandomForestClassifier(n_estimators=rf["n_trees"], max_depth=rf["max_depth"],
                                 min_samples_leaf=int(rf["min_samples_leaf"]), max_features="sqrt",
                                 bootstrap=True, n_jobs=threads, random_state=0)
    clf.fit(x_tr, y_tr)
    out["rf_fit_s"] = time.perf_counter() - t
    out["rf_auc"] = roc_auc_score(y_te, clf.predict_proba(x_te)[:, 1])

    # One decision tree: every column, no bootstrap (compared with ours and linfa-trees').
    from sklearn.tree import DecisionTreeClassifier
    dt = meta["dt"]
    t = time.perf_counter()
    tree = DecisionTreeClassifier(max_depth=dt["max_depth"], min_samples_leaf=int(dt["min_samples_leaf"]),
                                  random_state=0)
    tree.fit(x_tr, y_tr)
    out["dt_fit_s"] = time.perf_counter() - t
    out["dt_auc"] = roc_auc_score(y_te, tree.predict_proba(x_te)[:, 1])

    # TreeSHAP on our exported trees: best of `shap_repeat` calls (shap's C++ TreeSHAP is
    # single-threaded; building the explainer is not timed).
    for name in ["rf", "gbdt"]:
        model = shap_dict(os.path.join(d, f"{name}_model.json"))
        explainer = shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")
        best = float("inf")
        for _ in range(int(meta.get("shap_repeat", 1))):
            t = time.perf_counter()
            values = explainer.shap_values(x_ex, check_additivity=False)
            best = min(best, time.perf_counter() - t)
        out[f"shap_{name}_s"] = best
        np.asarray(values).astype("<f8").tofile(os.path.join(d, f"shap_{name}.f64"))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
