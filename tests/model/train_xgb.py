#!/usr/bin/python3
"""Trains a small XGBoost model for the model tests and writes what they
compare against.

Usage: train_xgb.py OUTDIR [--trees N] [--depth D] [--seed S] [--rows R]
                           [--base-score P] [--booster gbtree|gblinear]
                           [--tree-method hist|approx|exact] [--gamma G]
                           [--no-names]

Writes to OUTDIR:
  m.json        the model, Booster.save_model
  X.f32         the test rows, float32 little-endian, row-major (NaN = missing)
  margin.f64    XGBoost's margins for them (output_margin=True), float64
  prob.f64      XGBoost's probabilities, float64
  contrib.f64   XGBoost's Saabas contributions (pred_contribs, approx_contribs),
                nfeatures + 1 per row, the bias last (gbtree only)
  shape.txt     "ROWS FEATURES DELETED_NODES"
The predictions come from a booster loaded back from m.json, as riskd sees it.
Data: 8 features of different kinds with about 10% missing values, a
deterministic seed, and extra rows whose values sit exactly on split
thresholds. Exits 77 when xgboost or numpy is missing (the test then skips).
"""
import argparse
import json
import os
import sys

try:
    import numpy as np
    import xgboost as xgb
except ImportError as e:  # pragma: no cover
    print(f"skip: {e}", file=sys.stderr)
    sys.exit(77)

NAMES = ["amount", "acct_txn_1h", "acct_amount_24h", "card_age_days", "ip_risk",
         "distance_km", "is_new_device", "hour"]


def make_data(rng, n):
    nf = len(NAMES)
    X = np.empty((n, nf), dtype=np.float64)
    X[:, 0] = np.round(rng.lognormal(4.0, 1.2, n), 2)
    X[:, 1] = rng.poisson(2.0, n)
    X[:, 2] = np.round(rng.lognormal(5.0, 1.0, n), 2)
    X[:, 3] = rng.integers(0, 2000, n)
    X[:, 4] = rng.random(n)
    X[:, 5] = rng.exponential(300.0, n)
    X[:, 6] = rng.integers(0, 2, n)
    X[:, 7] = rng.integers(0, 24, n)
    logit = (-3.0 + 0.004 * X[:, 0] + 0.5 * X[:, 1] + 2.5 * (X[:, 4] > 0.8)
             + 1.2 * X[:, 6] - 0.002 * X[:, 3] + 0.5 * ((X[:, 7] < 5) | (X[:, 7] > 22)))
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    X[rng.random(X.shape) < 0.10] = np.nan
    return X.astype(np.float32), y


def thresholds(model):
    """(feature, threshold) of every split in a gbtree JSON model."""
    out = []
    for t in model["learner"]["gradient_booster"]["model"]["trees"]:
        for l, f, c in zip(t["left_children"], t["split_indices"], t["split_conditions"]):
            if l != -1:
                out.append((f, c))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--trees", type=int, default=30)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--base-score", type=float, default=None)
    ap.add_argument("--booster", default="gbtree")
    ap.add_argument("--tree-method", default="hist")
    ap.add_argument("--gamma", type=float, default=0.0)
    ap.add_argument("--no-names", action="store_true")
    a = ap.parse_args()

    rng = np.random.default_rng(a.seed)
    X, y = make_data(rng, a.rows)
    Xt, _ = make_data(rng, 1000)
    names = None if a.no_names else NAMES
    params = {"objective": "binary:logistic", "seed": a.seed, "nthread": 1,
              "booster": a.booster, "eta": 0.3}
    if a.booster == "gbtree":
        params.update({"max_depth": a.depth, "tree_method": a.tree_method, "gamma": a.gamma})
    if a.base_score is not None:
        params["base_score"] = a.base_score
    d = xgb.DMatrix(X, label=y, feature_names=names, missing=np.nan)
    bst = xgb.train(params, d, a.trees)
    path = os.path.join(a.outdir, "m.json")
    bst.save_model(path)

    with open(path) as f:
        model = json.load(f)
    deleted = 0
    if a.booster == "gbtree":
        for t in model["learner"]["gradient_booster"]["model"]["trees"]:
            deleted += int(t["tree_param"]["num_deleted"])
        # Rows with one value exactly on a split threshold, and just below it.
        extra = []
        for i, (f, c) in enumerate(thresholds(model)[:400]):
            row = Xt[i % len(Xt)].copy()
            row[f] = np.float32(c)
            extra.append(row)
            row = row.copy()
            row[f] = np.nextafter(np.float32(c), np.float32(-np.inf))
            extra.append(row)
        Xt = np.vstack([Xt, np.array(extra, dtype=np.float32)])
    # All missing, none missing.
    Xt = np.vstack([Xt, np.full((1, X.shape[1]), np.nan, dtype=np.float32),
                    np.nan_to_num(Xt[:1], nan=1.0)]).astype(np.float32)

    loaded = xgb.Booster(model_file=path)
    loaded.set_param({"nthread": 1})
    dt = xgb.DMatrix(Xt, feature_names=names, missing=np.nan)
    margin = loaded.predict(dt, output_margin=True)
    prob = loaded.predict(dt)
    Xt.astype("<f4").tofile(os.path.join(a.outdir, "X.f32"))
    margin.astype("<f8").tofile(os.path.join(a.outdir, "margin.f64"))
    prob.astype("<f8").tofile(os.path.join(a.outdir, "prob.f64"))
    if a.booster == "gbtree":
        contrib = loaded.predict(dt, pred_contribs=True, approx_contribs=True)
        contrib.astype("<f8").tofile(os.path.join(a.outdir, "contrib.f64"))
    with open(os.path.join(a.outdir, "shape.txt"), "w") as f:
        f.write(f"{Xt.shape[0]} {Xt.shape[1]} {deleted}\n")


if __name__ == "__main__":
    main()
