"""The lambda path under each init and early-stopping monitor: does a larger lambda still
give a smaller certified bound?

The variance-preserving init (``init='variance'``) starts PSiLON Net with a path norm
orders of magnitude above the paper's ``g = 1``. With early stopping on the validation
data loss (``monitor='data'``), a strongly regularized lambda reaches its best data loss
in the first evaluations, before its penalty has shrunk the network, and keeps that
state: its certified bound is then far above what its lambda asks for, and the path stops
being monotone. ``monitor='objective'`` compares the lambda's own criterion instead.

For each of scikit-learn's diabetes, breast cancer and wine (the smoke's sets; a 60/40
split, ``random_state`` 0), each ``init`` in (paper, variance) and each ``monitor`` in
(data, objective): a ``PSiLONRegressor``/``PSiLONClassifier`` at the smoke's size (width
64, depth 3, 300 steps, the paper's 13 lambdas, ``random_state`` 0). Prints per setting
the kept Lipschitz bound of each lambda, the smallest bound on the path (how far the
strongest regularization actually reaches), the number of *inversions* (pairs of lambdas
where the larger lambda has the larger bound; 0 for a monotone path), the selected lambda
and the test metric (RMSE on the standardized target / log loss).

Usage::

    python benchmarks/bench_init_path.py [--max-steps 300] [--width 64]
"""

from __future__ import annotations

import argparse
import itertools
import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.metrics import log_loss, root_mean_squared_error
from sklearn.model_selection import train_test_split

from psilon import PSiLONClassifier, PSiLONRegressor

SETS = {"diabetes": (load_diabetes, True), "breast_cancer": (load_breast_cancer, False), "wine": (load_wine, False)}


def _inversions(bounds: np.ndarray) -> int:
    """Pairs i < j (lambda_i < lambda_j) whose bounds are ordered the wrong way (ignoring 1% ties)."""
    return sum(1 for i, j in itertools.combinations(range(len(bounds)), 2) if bounds[j] > 1.01 * bounds[i])


def _run(name: str, init: str, monitor: str, args) -> dict:
    loader, regression = SETS[name]
    X, y = loader(return_X_y=True)
    if regression:
        y = (y - y.mean()) / y.std()
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.4, random_state=0,
                                              stratify=None if regression else y)
    cls = PSiLONRegressor if regression else PSiLONClassifier
    est = cls(width=args.width, depth=3, max_steps=args.max_steps, init=init, monitor=monitor, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X_tr, y_tr)
    bounds = est.path_["lipschitz_bound"].to_numpy()
    test = (root_mean_squared_error(y_te, est.predict(X_te)) if regression
            else log_loss(y_te, est.predict_proba(X_te), labels=est.classes_))
    return dict(bounds=bounds, inversions=_inversions(bounds), lam=est.lambda_, test=test,
                steps=int(est.n_steps_), smallest=float(np.nanmin(bounds)), selected_bound=float(bounds[est.path_["selected"].to_numpy()][0]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-steps", type=int, default=300)
    ap.add_argument("--width", type=int, default=64)
    args = ap.parse_args()
    print(f"width {args.width}, depth 3, {args.max_steps} steps, 13 lambdas 5e-5..0.5; bounds: l_inf-input Lipschitz bound "
          "of each lambda's kept state; inversions: lambda pairs with the larger lambda's bound > 1.01x the smaller's")
    total: dict[tuple, list] = {}
    for name in SETS:
        print(f"\n{name}")
        for init, monitor in itertools.product(("paper", "variance"), ("data", "objective")):
            r = _run(name, init, monitor, args)
            total.setdefault((init, monitor), []).append(r)
            bounds = " ".join(f"{b:.3g}" for b in r["bounds"])
            print(f"  init={init:8s} monitor={monitor:9s} smallest bound {r['smallest']:8.3g}  inversions {r['inversions']:2d}  "
                  f"selected lambda {r['lam']:<7g} (bound {r['selected_bound']:.3g})  test {r['test']:.4f}  "
                  f"steps {r['steps']:4d}  bounds: {bounds}")
    print("\ntotals over the 3 sets")
    for (init, monitor), rs in total.items():
        print(f"  init={init:8s} monitor={monitor:9s} largest smallest-bound {max(r['smallest'] for r in rs):8.3g}  "
              f"inversions {sum(r['inversions'] for r in rs):3d}  mean test {np.mean([r['test'] for r in rs]):.4f}")


if __name__ == "__main__":
    main()
