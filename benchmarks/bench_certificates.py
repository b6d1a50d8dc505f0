"""Certificates under attack (issue 14): certified radii and prediction bounds against PGD.

For each dataset: a PSiLON estimator (default recipe) is fitted on the training rows and
200 test rows are attacked with a hand-written l_inf PGD in the units of ``X`` (numeric
columns perturbed, one-hot / indicator columns fixed: the box ``|dz_j| <= r w_j`` of
``perturbation_weights()`` in the network's input space).

* classifiers: (a) violations: PGD at 0.999999 x the certified radius must never flip a
  prediction; (b) tightness: the smallest flipping radius PGD finds (doubling, then
  bisection) divided by the certified radius, median over the points it flips;
* regressor: PGD maximizing / minimizing the prediction in the ball of radius ``eps``
  must stay inside ``prediction_bounds``; tightness: attained change / certified change;
* ``lipschitz_lower_bound`` / ``lipschitz_bound`` (network input space);
* ``feature_importances`` vs scikit-learn's permutation importance (Spearman);
* ONNX (compacted, preprocessing folded): file size, max deviation, latency per row.

Run: ``.venv/bin/python benchmarks/bench_certificates.py --out docs/results/certificates``.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.inspection import permutation_importance
from sklearn.model_selection import train_test_split

from psilon.datasets import load_dataset
from psilon.estimators import PSiLONClassifier, PSiLONRegressor
from psilon.pathnorm import lipschitz_bound, lipschitz_lower_bound

CLASSIFIERS = ["pmlb:breast_cancer_wisconsin", "pmlb:pima", "pmlb:vehicle"]
REGRESSORS = ["pmlb:1028_SWD"]
N_TEST = 200


# --------------------------------------------------------------------------- the attack
def network_input(est, X) -> torch.Tensor:
    """``X`` through the fitted preprocessing, float64 (the network's input)."""
    Z = X if est.preprocessor_ is None else est.preprocessor_.transform(X)
    return torch.as_tensor(np.asarray(Z, dtype=np.float64))


def _margin(out: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """Positive while the prediction is ``top``: binary ``s * f``, else ``f_top - max_{j != top} f_j``."""
    if out.shape[1] == 1:
        return out[:, 0] * torch.where(top == 1, 1.0, -1.0).to(out.dtype)
    f_top = out.gather(1, top[:, None])[:, 0]
    others = out.scatter(1, top[:, None], float("-inf"))
    return f_top - others.max(1).values


def _top(out: torch.Tensor) -> torch.Tensor:
    return (out[:, 0] > 0).long() if out.shape[1] == 1 else out.argmax(1)


def pgd_flips(module, z, w, radius, *, steps: int = 60, restarts: int = 2, seed: int = 0) -> torch.Tensor:
    """Per row of ``z``: did l_inf PGD within the box ``|d_j| <= radius_i w_j`` change the predicted class?"""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        top = _top(module(z))
    box = radius[:, None] * w[None, :]
    flipped = torch.zeros(len(z), dtype=torch.bool)
    for r in range(restarts):
        delta = box * (2 * torch.rand(z.shape, generator=gen, dtype=z.dtype) - 1) if r else torch.zeros_like(z)
        for t in range(steps):
            delta.requires_grad_(True)
            margin = _margin(module(z + delta), top)
            (g,) = torch.autograd.grad(margin.sum(), delta)
            flipped |= (margin.detach() < 0)
            step = box * (0.25 if t < steps // 2 else 0.05)
            delta = torch.minimum(torch.maximum(delta.detach() - step * g.sign(), -box), box)
        with torch.no_grad():
            flipped |= _margin(module(z + delta), top) < 0
    return flipped


def smallest_flip(module, z, w, radius, *, grow: int = 12, bisect: int = 12) -> np.ndarray:
    """Per row, the smallest radius at which PGD flips the prediction (NaN: none up to ``2**grow`` x ``radius``)."""
    hi = radius.clone()
    found = torch.zeros(len(z), dtype=torch.bool)
    for _ in range(grow):
        hi = torch.where(found, hi, hi * 2)
        found |= pgd_flips(module, z, w, hi)
        if bool(found.all()):
            break
    lo = torch.zeros_like(hi)
    for _ in range(bisect):
        mid = (lo + hi) / 2
        f = pgd_flips(module, z, w, mid)
        hi, lo = torch.where(f, mid, hi), torch.where(f, lo, mid)
    return torch.where(found, hi, torch.nan).numpy()


def pgd_extreme(module, z, w, eps, sign: float, *, steps: int = 60) -> torch.Tensor:
    """PGD maximizing ``sign * f`` (one output) in the box ``|d_j| <= eps w_j``: the attained outputs."""
    box = eps * w[None, :].expand_as(z)
    delta = torch.zeros_like(z)
    best = None
    for t in range(steps):
        delta.requires_grad_(True)
        out = module(z + delta)[:, 0]
        (g,) = torch.autograd.grad((sign * out).sum(), delta)
        best = out.detach() if best is None else (torch.maximum if sign > 0 else torch.minimum)(best, out.detach())
        step = box * (0.25 if t < steps // 2 else 0.05)
        delta = torch.minimum(torch.maximum(delta.detach() + step * g.sign(), -box), box)
    with torch.no_grad():
        last = module(z + delta)[:, 0]
    return (torch.maximum if sign > 0 else torch.minimum)(best, last)


# --------------------------------------------------------------------------- per dataset
def _split(name: str, seed: int):
    ds = load_dataset(name)
    X, y = ds.X, ds.y
    strat = y if ds.task != "regression" else None
    return ds, train_test_split(X, y, test_size=N_TEST, random_state=seed, stratify=strat)


def classifier_report(name: str, architecture: str, seed: int = 0, lambdas=None) -> dict:
    ds, (X_tr, X_te, y_tr, y_te) = _split(name, seed)
    est = PSiLONClassifier(architecture=architecture, lambdas=lambdas, random_state=seed).fit(X_tr, y_tr)
    module = copy.deepcopy(est.module_).double()
    z = network_input(est, X_te)
    w = torch.as_tensor(est.perturbation_weights("input"))
    radius = torch.as_tensor(est.certified_radius(X_te))
    finite = torch.isfinite(radius) & (radius > 0)
    violations = int(pgd_flips(module, z[finite], w, radius[finite] * (1 - 1e-6), steps=100, restarts=4).sum())
    adv = smallest_flip(module, z[finite], w, radius[finite])
    ratio = adv / radius[finite].numpy()
    low = lipschitz_lower_bound(module, z.numpy()).numpy()
    up = lipschitz_bound(module).numpy()
    return {
        "dataset": name, "task": ds.task, "architecture": architecture, "lambda": est.lambda_,
        "test_accuracy": float(est.score(X_te, y_te)), "n_points": int(len(z)),
        "n_attacked": int(finite.sum()), "violations": violations,
        "n_flipped": int(np.isfinite(ratio).sum()),
        "tightness_median": float(np.nanmedian(ratio)) if np.isfinite(ratio).any() else None,
        "tightness_min": float(np.nanmin(ratio)) if np.isfinite(ratio).any() else None,
        "radius_median": float(radius.median()),
        "lower_over_bound": (low / up).round(4).tolist(),
        **_importance(est, X_te, y_te, seed),
        "_est": est, "_X_te": X_te, "_y_te": y_te,
    }


def regressor_report(name: str, architecture: str, seed: int = 0, lambdas=None, eps_fraction: float = 0.05) -> dict:
    ds, (X_tr, X_te, y_tr, y_te) = _split(name, seed)
    est = PSiLONRegressor(architecture=architecture, lambdas=lambdas, random_state=seed).fit(X_tr, y_tr)
    module = copy.deepcopy(est.module_).double()
    z = network_input(est, X_te)
    w = torch.as_tensor(est.perturbation_weights("input"))
    scale = float(np.asarray(est.y_scale_).ravel()[0]); center = float(np.asarray(est.y_center_).ravel()[0])
    eps = eps_fraction * float(np.median(X_tr.std().to_numpy()))  # 5% of a typical column's spread
    lower, upper = est.prediction_bounds(X_te, eps)
    hi = pgd_extreme(module, z, w, eps, 1.0).numpy() * scale + center
    lo = pgd_extreme(module, z, w, eps, -1.0).numpy() * scale + center
    pred = est.predict(X_te)
    violations = int(((hi > upper) | (lo < lower)).sum())
    attained = np.maximum(hi - pred, pred - lo) / (upper - pred)
    low = lipschitz_lower_bound(module, z.numpy()).numpy()
    return {
        "dataset": name, "task": ds.task, "architecture": architecture, "lambda": est.lambda_,
        "test_r2": float(est.score(X_te, y_te)), "n_points": int(len(z)), "eps": eps,
        "violations": violations, "tightness_median": float(np.median(attained)),
        "tightness_max": float(np.max(attained)),
        "lower_over_bound": (low / lipschitz_bound(module).numpy()).round(4).tolist(),
        **_importance(est, X_te, y_te, seed),
        "_est": est, "_X_te": X_te, "_y_te": y_te,
    }


def _importance(est, X_te, y_te, seed: int) -> dict:
    """Spearman correlation of ``feature_importances(columns=True)`` with permutation importance, top-5 overlap."""
    ours = est.feature_importances(columns=True)
    perm = permutation_importance(est, X_te, y_te, n_repeats=5, random_state=seed)
    perm = perm.importances_mean[[list(X_te.columns).index(c) for c in ours.index]]
    rho = spearmanr(ours.to_numpy(), perm).statistic
    top = lambda v: set(np.argsort(-np.asarray(v))[:5])  # noqa: E731
    return {"importance_spearman": float(rho), "importance_top5_overlap": len(top(ours) & top(perm)),
            "n_features": int(len(ours)), "zero_path_norm_features": int((ours.to_numpy() == 0).sum())}


# --------------------------------------------------------------------------- ONNX
def onnx_report(rep: dict, *, repeats: int = 200) -> dict:
    """Size, deviation and latency per row of the compacted ONNX model vs the full PyTorch model."""
    import onnxruntime as ort

    est, X = rep["_est"], rep["_X_te"]
    out, Xn = Path("/tmp/psilon_bench_cert.onnx"), X.to_numpy(np.float64)
    res = {"dataset": rep["dataset"], "architecture": rep["architecture"]}
    buf = io.BytesIO(); torch.save(est.module_.state_dict(), buf)
    res["torch_state_bytes"] = buf.getbuffer().nbytes
    res["torch_parameters"] = int(sum(p.numel() for p in est.module_.parameters()))
    ref = est.predict_proba(X) if hasattr(est, "classes_") else est.predict(X)
    for dtype in ("float64", "float32"):
        est.export_onnx(out, dtype=dtype)
        sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"X": Xn.astype(dtype)})[-1]
        res[f"onnx_{dtype}_bytes"] = out.stat().st_size
        res[f"onnx_{dtype}_max_abs_dev"] = float(np.abs(got.reshape(ref.shape) - ref).max())
        res[f"onnx_{dtype}_us_per_row_batch1"] = _time(lambda: sess.run(None, {"X": Xn[:1].astype(dtype)}), repeats)
        res[f"onnx_{dtype}_us_per_row_batch200"] = _time(lambda: sess.run(None, {"X": Xn.astype(dtype)}), 20) / len(Xn)
    module = est.module_
    Z = torch.as_tensor(est.preprocessor_.transform(X), dtype=torch.float32)
    with torch.no_grad():
        res["torch_module_us_per_row_batch1"] = _time(lambda: module(Z[:1]), repeats)
        res["torch_module_us_per_row_batch200"] = _time(lambda: module(Z), 20) / len(Z)
    res["estimator_predict_us_per_row_batch1"] = _time(lambda: est.predict(X.iloc[:1]), 50)
    return res


def pruned_onnx_report(name: str, seed: int = 0, lam: float = 1e-2) -> dict:
    """The ONNX report of a pruned classifier (``prune=True`` at one lambda): what compaction saves."""
    ds, (X_tr, X_te, y_tr, y_te) = _split(name, seed)
    est = PSiLONClassifier(lambdas=[lam], prune=True, random_state=seed).fit(X_tr, y_tr)
    rep = {"_est": est, "_X_te": X_te, "dataset": name, "architecture": f"mlp, prune=True, lambda={lam:g}"}
    res = onnx_report(rep)
    res["test_accuracy"] = float(est.score(X_te, y_te))
    res["selected_features"] = int(len(est.selected_features_))
    return res


def _time(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` in microseconds (after 3 warm-up calls)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e6)


# --------------------------------------------------------------------------- main
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="docs/results/certificates")
    ap.add_argument("--architectures", default="mlp,resnet")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pruned", action="store_true", help="only the ONNX report of a pruned breast-cancer classifier")
    ap.add_argument("--report-only", action="store_true", help="only rewrite report.md from the JSON files in --out")
    ap.add_argument("--lambdas", default="5e-5,5e-4,5e-3,5e-2",
                    help="comma-separated lambda grid ('paper': the estimators' default 13 values)")
    args = ap.parse_args(argv)
    lambdas = None if args.lambdas == "paper" else [float(v) for v in args.lambdas.split(",")]
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        print(f"wrote {write_report(out)}")
        return
    torch.set_num_threads(1)
    if args.pruned:
        res = pruned_onnx_report(CLASSIFIERS[0], args.seed)
        (out / "onnx_pruned.json").write_text(json.dumps([res], indent=1))
        print(res, f"wrote {write_report(out)}", sep="\n")
        return
    tag = "_".join(args.architectures.split(","))
    rows, onnx_rows = [], []
    for arch in args.architectures.split(","):
        for name in CLASSIFIERS + REGRESSORS:
            report = classifier_report if name in CLASSIFIERS else regressor_report
            rep = report(name, arch, args.seed, lambdas)
            rows.append(_public(rep)); onnx_rows.append(onnx_report(rep))
            print(rows[-1], onnx_rows[-1], sep="\n", flush=True)
            # written after every dataset: an interrupted run keeps what it measured
            (out / f"attack_{tag}.json").write_text(json.dumps(rows, indent=1))
            (out / f"onnx_{tag}.json").write_text(json.dumps(onnx_rows, indent=1))
    print(f"wrote {out}/attack_{tag}.json, {out}/onnx_{tag}.json and {write_report(out)}")


def write_report(out: Path) -> Path:
    """``report.md`` from every ``attack_*.json`` / ``onnx_*.json`` in ``out``."""
    attack = [r for f in sorted(out.glob("attack_*.json")) for r in json.loads(f.read_text())]
    onnx = [r for f in sorted(out.glob("onnx_*.json")) for r in json.loads(f.read_text())]
    lines = ["# Certificates under PGD (generated by benchmarks/bench_certificates.py)", "",
             "| dataset | arch | lambda | test score | points | violations | tightness median (min/max) | "
             "lower/upper bound | importance Spearman | top-5 overlap |", "|" + "---|" * 10]
    for r in attack:
        score = r.get("test_accuracy", r.get("test_r2"))
        extreme = r.get("tightness_min", r.get("tightness_max"))
        tight = "n/a" if r["tightness_median"] is None else f"{r['tightness_median']:.3g} ({extreme:.3g})"
        lines.append(
            f"| {r['dataset']} | {r['architecture']} | {r['lambda']:g} | {score:.3f} | {r['n_points']} | "
            f"{r['violations']} | {tight} | {', '.join(f'{v:.3g}' for v in r['lower_over_bound'])} | "
            f"{r['importance_spearman']:.2f} | {r['importance_top5_overlap']}/5 |"
        )
    lines += ["", "| dataset | arch | torch params | torch state bytes | ONNX f64 bytes | ONNX f32 bytes | "
              "max dev f64 | ONNX f32 us/row (1 / 200) | ONNX f64 us/row (1 / 200) | torch module us/row (1 / 200) | "
              "predict() us/row (1) |", "|" + "---|" * 11]
    for r in onnx:
        lines.append(
            f"| {r['dataset']} | {r['architecture']} | {r['torch_parameters']} | {r['torch_state_bytes']} | "
            f"{r['onnx_float64_bytes']} | {r['onnx_float32_bytes']} | {r['onnx_float64_max_abs_dev']:.1e} | "
            f"{r['onnx_float32_us_per_row_batch1']:.0f} / {r['onnx_float32_us_per_row_batch200']:.2f} | "
            f"{r['onnx_float64_us_per_row_batch1']:.0f} / {r['onnx_float64_us_per_row_batch200']:.2f} | "
            f"{r['torch_module_us_per_row_batch1']:.0f} / {r['torch_module_us_per_row_batch200']:.2f} | "
            f"{r['estimator_predict_us_per_row_batch1']:.0f} |"
        )
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _public(rep: dict) -> dict:
    return {k: v for k, v in rep.items() if not k.startswith("_")}


if __name__ == "__main__":
    main()
