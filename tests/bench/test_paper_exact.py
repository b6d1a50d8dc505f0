"""Issue #15: the paper's 30 tabular datasets, with the reference code's recipe (``paper-exact``)
and with psilon's default recipe (``default-recipe-30``): the datasets, the expansion into
tasks, wine quality as a regression target, the warm path through the estimator and the
benchmark entry, and a tiny end-to-end run."""

import dataclasses
import json

import numpy as np
import pytest
from sklearn.datasets import make_regression

from psilon import PSiLONRegressor
from psilon.bench.models import PAPER_RECIPE
from psilon.bench.protocols import (
    DEFAULT_RECIPE,
    PAPER_30_DATASETS,
    PAPER_LAMBDAS,
    PROTOCOLS,
    ModelSpec,
    Protocol,
    Task,
)
from psilon.bench.runner import execute_task, prepare_split, run_protocol
from psilon.datasets import DatasetError, list_datasets, load_dataset, resolve_name

#: The issue's list, written out independently of the protocol module.
ISSUE_15 = {
    "regression": ["cpu_act", "cpu_small", "pol", "house_16H", "2dplanes", "fried", "wind", "BNG_pwLinear",
                   "wine_quality_white"],
    "binary": ["magic", "spambase", "twonorm", "churn", "clean2", "coil2000", "mushroom", "hypothyroid"],
    "multiclass": ["waveform_40", "texture", "optdigits", "satimage", "letter", "page_blocks", "waveform_21",
                   "ann_thyroid", "sleep", "connect_4", "dna", "splice", "led24"],
}
NETWORKS = ("psilon-net", "standard-net", "psilon-resnet")


def _bare(qualified: str) -> str:
    name = qualified.split(":", 1)[1].split("@")[0]
    head, _, tail = name.partition("_")
    return tail if head.isdigit() else name


def test_the_30_datasets_are_the_issues_list_and_all_local(data_dir):
    assert {task: [_bare(d) for d in names] for task, names in PAPER_30_DATASETS.items()} == ISSUE_15
    assert sum(map(len, PAPER_30_DATASETS.values())) == 30
    local = set(list_datasets("pmlb", data_dir))
    for task, names in PAPER_30_DATASETS.items():
        for name in names:
            assert name.split("@")[0] in local, name
            assert resolve_name(name, data_dir) == name
            ds = load_dataset(name, data_dir)
            assert ds.task == task, (name, ds.task)
            assert ds.n_rows >= 3000 and ds.n_features >= 10, name
    assert "pmlb:294_satellite_image" not in {d for names in PAPER_30_DATASETS.values() for d in names}


def test_wine_quality_is_a_regression_target_only_with_the_option(data_dir):
    plain = load_dataset("pmlb:wine_quality_white", data_dir)
    forced = load_dataset("pmlb:wine_quality_white@regression", data_dir)
    assert plain.task == "multiclass"  # PMLB files it as 7-class classification
    assert forced.task == "regression" and forced.y.dtype == float
    assert forced.name == "pmlb:wine_quality_white@regression"
    assert forced.X.equals(plain.X) and np.array_equal(forced.y.to_numpy(), plain.y.to_numpy())
    assert resolve_name("wine_quality_white@regression", data_dir) == "pmlb:wine_quality_white@regression"
    with pytest.raises(DatasetError, match="unknown target option 'regresion'.*@regression"):
        resolve_name("wine_quality_white@regresion", data_dir)
    with pytest.raises(DatasetError, match="did you mean"):
        resolve_name("wine_quality_whte@regression", data_dir)
    # the runner reads it as regression: robust scaling on the training rows, RMSE
    task = next(t for t in PROTOCOLS["paper-exact"].tasks(data_dir=data_dir) if "wine" in t.dataset)
    split = prepare_split(task, load_dataset(task.dataset, data_dir))
    assert split.task == "regression" and split.n_classes is None
    assert len(split.y_train) == 2000 and len(split.y_test) == len(split.y_val) == 1449
    assert np.median(split.y_train) == 0.0 and split.target_scale == 0.5  # quality: median 6, IQR 1


def test_paper_exact_expands_to_the_reference_settings(data_dir):
    p = PROTOCOLS["paper-exact"]
    tasks = p.tasks(data_dir=data_dir)
    assert len(tasks) == 30 * 1 * 4 and len({t.key for t in tasks}) == 120
    assert [m.label for m in p.models] == ["linear", "random-forest", "standard-net", "psilon-net"]
    assert p.split.seeds == (0,) and (p.split.kind, p.split.row_cap, p.split.n_train) == ("shuffle", 20_000, 2_000)
    assert (p.preprocessing.standardize, p.preprocessing.target_scaling, p.preprocessing.metric_scale) == (True, "robust", "scaled")
    paper = {m.label: m for m in PROTOCOLS["paper-tabular"].models}
    for m in p.models:
        if m.label in ("linear", "random-forest"):
            assert m.params == paper[m.label].params  # the same grids as paper-tabular
            continue
        want = {
            "architecture": "mlp", "width": 500, "depth": 4, "lambdas": list(PAPER_LAMBDAS), "max_steps": 5000,
            "batch_size": 400, "selection": "holdout", "init": "paper", "length_lr_scale": 1.0, "restore": "final",
            "patience": None, "path": "warm", "lr_step_every": 5, "final_div_factor": 2.0, "learning_rate": 2e-3,
        }
        assert m.params == want, m.label
    rf = paper["random-forest"].params
    assert rf["n_estimators"] == 1000 and rf["min_samples_leaf"] == [4, 8, 12, 16, 20, 30, 40, 50, 75, 100, 150, 200]
    assert sorted(PAPER_LAMBDAS) == list(PAPER_LAMBDAS)  # the warm path runs them in increasing order
    # the protocol round-trips through JSON (the store's protocol.json) with the same task keys
    again = Protocol.from_dict(json.loads(json.dumps(p.to_dict())))
    assert [t.key for t in again.tasks(data_dir=data_dir)] == [t.key for t in tasks]


def test_default_recipe_30_expands_to_psilons_recipe_on_three_splits(data_dir):
    p = PROTOCOLS["default-recipe-30"]
    tasks = p.tasks(data_dir=data_dir)
    labels = ["linear", "random-forest", "hist-gb", "realmlp-td", "standard-net", "psilon-net", "psilon-resnet"]
    assert [m.label for m in p.models] == labels
    assert len(tasks) == 30 * 3 * 7 and p.split.seeds == (0, 1, 2)
    assert p.datasets == PROTOCOLS["paper-exact"].datasets
    assert p.split.row_cap == 20_000 and p.split.n_train == 2_000
    for m in p.models:
        if m.label in NETWORKS:
            assert {k: m.params[k] for k in DEFAULT_RECIPE} == DEFAULT_RECIPE
            assert (m.params["width"], m.params["depth"], m.params["max_steps"]) == (500, 4, "auto")
            assert "path" not in m.params and "lr_step_every" not in m.params  # the estimators' defaults
    assert {t.dataset for t in tasks} == set(p.datasets)


def test_recipe_ablation_steps_add_one_difference_each_between_the_two_recipes(data_dir):
    p = PROTOCOLS["recipe-ablation"]
    assert [_bare(d) for d in p.datasets] == ["cpu_act", "pol", "house_16H", "magic", "twonorm", "churn"]
    nets = {m.label: m.params for m in p.models if "@" in m.label}
    steps = ["tabular", "schedule", "schedule+depth4", "exact"]
    assert list(nets) == [f"{net}@{st}" for st in steps for net in ("standard-net", "psilon-net")]
    for net in ("standard-net", "psilon-net"):
        chain = [nets[f"{net}@{st}"] for st in steps]
        changed = [{k for k in set(a) | set(b) if a.get(k) != b.get(k)} for a, b in zip(chain, chain[1:])]
        assert changed == [{"lr_step_every", "final_div_factor"}, {"depth"},
                           {"path", "init", "learning_rate", "length_lr_scale", "restore"}]  # patience: None, absent
        # init ... patience are paper-tabular's values, spelled out: PAPER_RECIPE fills them in below
        assert all(chain[3][k] == PAPER_RECIPE[k] for k in ("init", "learning_rate", "length_lr_scale", "restore", "patience"))

    # the end points are the same fits as paper-tabular's and paper-exact's networks (so --reuse takes them)
    def fits(name, label):
        return [t.fit_identity() for t in PROTOCOLS[name].tasks(datasets=list(p.datasets), data_dir=data_dir)
                if t.model.label == label]

    ablation = {t.model.label: [] for t in p.tasks(data_dir=data_dir)}
    for t in p.tasks(data_dir=data_dir):
        ablation[t.model.label].append(t.fit_identity())
    for net in ("standard-net", "psilon-net"):
        assert ablation[f"{net}@tabular"] == fits("paper-tabular", net)
        assert ablation[f"{net}@exact"] == fits("paper-exact", net)
        assert ablation[f"{net}@schedule"] != fits("paper-tabular", net)
    assert ablation["random-forest"] == fits("paper-exact", "random-forest") == fits("paper-tabular", "random-forest")


def test_the_estimator_selects_among_the_warm_members():
    X, y = make_regression(n_samples=300, n_features=6, noise=5.0, random_state=0)
    X_tr, y_tr, X_val, y_val = X[:200], y[:200], X[200:], y[200:]
    lambdas = [1e-4, 3e-2, 3e-1]
    common = dict(width=16, depth=4, lambdas=lambdas, max_steps=60, batch_size=50, init="paper", length_lr_scale=1.0,
                  restore="final", patience=None, lr_step_every=5, final_div_factor=2.0, random_state=0, device="cpu")
    warm = PSiLONRegressor(path="warm", **common).fit(X_tr, y_tr, eval_set=(X_val, y_val))
    cold = PSiLONRegressor(path="independent", **common).fit(X_tr, y_tr, eval_set=(X_val, y_val))
    w, c = warm.path_["val_loss"].to_numpy(), cold.path_["val_loss"].to_numpy()
    assert w[0] == pytest.approx(c[0], rel=1e-5)  # the first lambda starts from the same init
    assert not np.allclose(w[1:], c[1:], rtol=1e-3)  # the later ones from the previous lambda's weights
    assert warm.lambda_ == lambdas[int(np.nanargmin(w))]
    # the fitted network is the selected warm member: its validation MSE (scaled target) is the path's
    scaled = (y_val - warm.y_center_[0]) / warm.y_scale_[0]
    pred = (warm.predict(X_val) - warm.y_center_[0]) / warm.y_scale_[0]
    assert np.mean((pred - scaled) ** 2) == pytest.approx(np.nanmin(w), rel=1e-3)


def _shrunk(model: ModelSpec, **changes) -> ModelSpec:
    return ModelSpec(model.label, model.entry, {**model.params, **changes})


TINY = dict(width=16, max_steps=40, lambdas=[1e-4, 1e-2, 1e-1])


@pytest.mark.parametrize("dataset", ["pmlb:wine_quality_white@regression", "pmlb:hypothyroid", "pmlb:led24"])
def test_paper_exact_network_entry_runs_end_to_end_with_shrunk_settings(data_dir, dataset):
    p = PROTOCOLS["paper-exact"]
    psilon = _shrunk(next(m for m in p.models if m.label == "psilon-net"), **TINY)
    assert psilon.params["path"] == "warm" and psilon.params["depth"] == 4
    row = execute_task(Task(p.name, dataset, 0, psilon, p.split, p.preprocessing), str(data_dir), threads=1)
    assert row["status"] == "ok", row.get("traceback")
    assert row["task_type"] == load_dataset(dataset, data_dir).task
    assert row["n_train"] == 2000 and row["selected"]["lambda"] in TINY["lambdas"]
    assert len(row["path"]) == 3 and row["near_sparsity"] is not None and np.min(row["lipschitz_bound"]) > 0
    assert np.isfinite(row["metrics"]["test"][row["primary_metric"]])
    # the warm path reached the estimator: from the second lambda on it differs from an independent path
    cold = _shrunk(psilon, path="independent")
    other = execute_task(Task(p.name, dataset, 0, cold, p.split, p.preprocessing), str(data_dir), threads=1)
    warm_val = [r["val_loss"] for r in row["path"]]
    cold_val = [r["val_loss"] for r in other["path"]]
    assert warm_val[0] == pytest.approx(cold_val[0], rel=1e-5) and warm_val[1:] != pytest.approx(cold_val[1:], rel=1e-4)


def test_paper_exact_tiny_run_writes_the_claim_section(tmp_path, data_dir):
    p = PROTOCOLS["paper-exact"]
    models = tuple(_shrunk(m, **TINY) if m.label in NETWORKS else
                   _shrunk(m, n_estimators=10, min_samples_leaf=[4, 50]) if m.label == "random-forest" else m
                   for m in p.models)
    tiny = Protocol(p.name, p.description, ("pmlb:wine_quality_white@regression", "pmlb:hypothyroid"), models,
                    p.split, p.preprocessing)
    summary = run_protocol(tiny, tmp_path, data_dir=data_dir, progress=False)
    assert (summary.ok, summary.error) == (8, 0)
    from psilon.bench.report import write_report

    s = write_report(tmp_path)["paper-exact"]
    claim = s["claim"]
    assert claim["rivals"]["standard-net"]["datasets"] == 2 and claim["of"] == 30
    report = (tmp_path / "report.md").read_text()
    assert "21 of 30" in report and "open" in report  # 2 of 30 datasets cannot decide it
    assert (tmp_path / "plots" / "cd_paper-exact.png").is_file()


def test_a_killed_warm_path_task_resumes_from_its_checkpoints(tmp_path, data_dir, monkeypatch):
    """The runner gives warm-path tasks a checkpoint folder of their own: a task killed midway
    trains only its unfinished lambdas when re-run, with the uninterrupted result; the folder
    goes once the row is stored."""
    import psilon.train.path as path_module
    from psilon.bench.runner import CHECKPOINTS_DIR, STORE_NAME
    from psilon.bench.status import store_status
    from psilon.bench.store import ResultStore

    p = PROTOCOLS["paper-exact"]
    psilon = _shrunk(next(m for m in p.models if m.label == "psilon-net"), **TINY)
    task = Task(p.name, "pmlb:wine_quality_white@regression", 0, psilon, p.split, p.preprocessing)
    plain = execute_task(task, str(data_dir), threads=1)
    real, calls = path_module.train_members, []

    def dies_at_the_third_lambda(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("simulated kill")
        return real(*args, **kwargs)

    monkeypatch.setattr(path_module, "train_members", dies_at_the_third_lambda)
    folder = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_protocol(Protocol(p.name, p.description, (task.dataset,), (psilon,), p.split, p.preprocessing), folder,
                     data_dir=data_dir, progress=False)
    saved = folder / CHECKPOINTS_DIR / task.key
    assert sorted(f.name for f in saved.glob("*.pt")) == ["fold-1-lambda0.pt", "fold-1-lambda1.pt"]
    (flight,) = store_status(folder).in_flight  # what `psilon status` says of it
    assert (flight.task.key, flight.kind, flight.done, flight.total) == (task.key, "warm path", 2, len(psilon.params["lambdas"]))

    calls.clear()
    summary = run_protocol(Protocol(p.name, p.description, (task.dataset,), (psilon,), p.split, p.preprocessing),
                           folder, data_dir=data_dir, progress=False)
    assert summary.ok == 1 and len(calls) == 1  # only the third lambda was trained
    (row,) = ResultStore(folder / STORE_NAME).rows()
    assert row["metrics"] == plain["metrics"] and row["path"] == plain["path"]
    assert not saved.exists()  # the row holds the result: its checkpoints are gone
    assert row["restored_checkpoints"] == 2 and "restored_checkpoints" not in plain  # its fit time is partial


def test_a_killed_independent_path_task_resumes_from_its_run_snapshot(tmp_path, data_dir, monkeypatch):
    """default-recipe-30's networks train all lambdas in one stacked run: a task killed midway
    goes on from its last snapshot when re-run, with the uninterrupted result."""
    from psilon.bench.runner import CHECKPOINTS_DIR, STORE_NAME
    from psilon.bench.status import store_status
    from psilon.bench.store import ResultStore
    from psilon.train.checkpoint import RunCheckpoint
    from psilon.train.loop import TrainLoop

    p = PROTOCOLS["default-recipe-30"]
    net = _shrunk(next(m for m in p.models if m.label == "psilon-net"), **TINY, patience=None)
    assert net.params.get("path", "independent") == "independent"
    one = Protocol(p.name, p.description, ("pmlb:hypothyroid",), (net,), dataclasses.replace(p.split, seeds=(0,)),
                   p.preprocessing)
    task = Task(one.name, "pmlb:hypothyroid", 0, net, one.split, one.preprocessing)
    plain = execute_task(task, str(data_dir), threads=1)
    real, steps = TrainLoop._step, []

    def step(self, i):
        steps.append(i)
        if len(steps) == 30:
            raise KeyboardInterrupt("simulated kill")
        return real(self, i)

    monkeypatch.setattr(TrainLoop, "_step", step)
    monkeypatch.setattr(RunCheckpoint, "due", lambda self: True)
    folder = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_protocol(one, folder, data_dir=data_dir, progress=False)
    saved = folder / CHECKPOINTS_DIR / task.key
    assert sorted(f.name for f in saved.iterdir()) == ["run.pt", "started.json"]  # its snapshot, and its start
    (flight,) = store_status(folder).in_flight  # what `psilon status` says of it: its last snapshot's step
    assert (flight.task.key, flight.kind, flight.total) == (task.key, "run", 40) and 0 < flight.done < 30
    assert flight.seconds_left > 0  # the snapshot carries its training time: the pace

    steps.clear()
    summary = run_protocol(one, folder, data_dir=data_dir, progress=False)
    assert summary.ok == 1 and steps[0] > 0 and len(steps) < 40  # went on from its snapshot
    (row,) = ResultStore(folder / STORE_NAME).rows()
    assert row["metrics"] == plain["metrics"] and row["path"] == plain["path"]
    assert not saved.exists() and row["restored_checkpoints"] == 1


def test_checkpoint_dir_must_be_a_folder_path():
    X, y = make_regression(n_samples=60, n_features=3, random_state=0)
    with pytest.raises(ValueError, match="checkpoint_dir must be None or a folder path"):
        PSiLONRegressor(checkpoint_dir=3, path="warm", max_steps=5, width=4).fit(X, y)
