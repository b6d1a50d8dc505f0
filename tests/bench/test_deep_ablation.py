"""The deep-ablation protocol (paper notes P1.8): variants, image split, the deep-resnet entry, CLI and report."""

import json
import struct

import numpy as np
import pytest

from psilon.bench.cli import main
from psilon.bench.models import ABLATION_VARIANTS, fit_deep_resnet
from psilon.bench.protocols import (
    DEEP_ABLATION_CPU,
    DEEP_ABLATION_GRIDS,
    DEEP_ABLATION_PAPER,
    PROTOCOLS,
    deep_ablation_protocol,
)
from psilon.bench.report import _ablation_claim
from psilon.bench.runner import prepare_image_split
from psilon.bench.store import ResultStore
from psilon.datasets import load_image_benchmark

TINY = DEEP_ABLATION_CPU | {"width": 8, "depth": 4, "epochs": 3, "eval_every_epochs": 1}
PAPER_NAMES = ("PSiLON", "L1-IB", "L2-IB", "L1-OB", "L2-OB", "Standard", "Projected PSiLON")


def _write_idx(path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">i", n) for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_mnist(tmp_path):
    """A data folder with a 300-image MNIST-10k stand-in: class k is a bright 3-pixel-wide stripe at row 2k."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 30)
    images = rng.integers(0, 60, size=(300, 28, 28))
    for i, k in enumerate(labels):
        images[i, 2 * k + 2 : 2 * k + 5, :] = 255
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    _write_idx(folder / "t10k-images-idx3-ubyte", images)
    _write_idx(folder / "t10k-labels-idx1-ubyte", labels)
    return tmp_path / "data"


def _tiny_protocol(tmp_path, **kwargs) -> str:
    path = tmp_path / "deep-ablation.json"
    path.write_text(json.dumps(deep_ablation_protocol("deep-ablation", TINY, "tiny test", **kwargs).to_dict()))
    return str(path)


def test_protocols_hold_the_seven_variants_at_the_paper_lambdas_and_the_grids():
    paper_lambdas = {"psilon": 2.5e-4, "l1-ib": 2.5e-4, "l2-ib": 2.5e-4, "l1-ob": 1e-4, "l2-ob": 1e-4,
                     "standard": 2.5e-2, "projected-psilon": 2.5e-4}
    for name, settings in (("deep-ablation", DEEP_ABLATION_CPU), ("deep-ablation-paper", DEEP_ABLATION_PAPER)):
        protocol = PROTOCOLS[name]
        models = {m.label: m for m in protocol.models}
        assert {m.entry for m in protocol.models} == {"deep-resnet"}
        for label, lam in paper_lambdas.items():
            assert models[label].params["lambdas"] == [lam]
        assert models["psilon-grid"].params["lambdas"] == list(DEEP_ABLATION_GRIDS["other"])
        assert models["standard-grid"].params["lambdas"] == list(DEEP_ABLATION_GRIDS["standard"])
        assert models["psilon-pruned"].params["prune_epochs"] == settings["epochs"] // 10
        for m in protocol.models:
            assert m.params["variant"] in ABLATION_VARIANTS
            assert {k: m.params[k] for k in settings} == settings
        assert protocol.split.kind == "images" and protocol.datasets == ("images:fashion-mnist",)
        assert not protocol.preprocessing.standardize
        assert "CPU-sized" in protocol.description if name == "deep-ablation" else "paper" in protocol.description
    assert (DEEP_ABLATION_PAPER["width"], DEEP_ABLATION_PAPER["depth"], DEEP_ABLATION_PAPER["epochs"]) == (500, 12, 400)
    assert DEEP_ABLATION_PAPER["batch_size"] == 200 and DEEP_ABLATION_PAPER["learning_rate"] == 2e-2


def test_variants_are_the_papers_network_options():
    opts = {k: (v["model"], v["network"].get("norm"), v["network"].get("shared"), v["network"].get("bound"),
                v["network"].get("penalty"), v.get("projected", False)) for k, v in ABLATION_VARIANTS.items()}
    assert opts == {
        "psilon": ("psilon", "l1", True, "improved", "path", False),
        "l1-ib": ("psilon", "l1", False, "improved", "path", False),
        "l2-ib": ("psilon", "l2", False, "improved", "path", False),
        "l1-ob": ("psilon", "l1", False, "original", "path", False),
        "l2-ob": ("psilon", "l2", False, "original", "path", False),
        "standard": ("standard", "l2", False, None, "squared", False),
        "projected": ("psilon", "l1", True, "improved", "path", True),
    }
    assert tuple(v["name"] for v in ABLATION_VARIANTS.values()) == PAPER_NAMES


def test_image_split_is_the_benchmark_split_and_needs_image_datasets(tiny_mnist):
    task = PROTOCOLS["deep-ablation"].tasks(datasets=["images:mnist-10k"], models=["psilon"], data_dir=tiny_mnist)[0]
    prepared = prepare_image_split(task, str(tiny_mnist))
    splits = load_image_benchmark(tiny_mnist, "mnist-10k")
    assert np.array_equal(prepared.X_train, splits.X_train) and np.array_equal(prepared.y_test, splits.y_test)
    assert (len(prepared.y_train), len(prepared.y_val), len(prepared.y_test)) == (180, 60, 60)
    assert prepared.description == splits.description and "MNIST-10k" in prepared.description
    with pytest.raises(ValueError, match="images:<name> datasets"):
        PROTOCOLS["deep-ablation"].tasks(datasets=["sklearn:iris"])
    with pytest.raises(ValueError, match="image benchmark's own split"):
        PROTOCOLS["deep-ablation"].split.split(None, 0)


def test_fit_deep_resnet_keeps_the_member_with_lowest_validation_loss(tiny_mnist):
    s = load_image_benchmark(tiny_mnist, "mnist-10k")
    params = TINY | {"variant": "psilon", "lambdas": [1e-4, 10.0], "random_state": 0}
    result = fit_deep_resnet(s.X_train, s.y_train, s.X_val, s.y_val, "multiclass", params)
    val = [p["val_score"] for p in result.path]
    assert result.selected["lambda"] == [1e-4, 10.0][int(np.argmin(val))]
    assert result.extra["steps"] == 3 * result.extra["steps_per_epoch"] and result.extra["members"] == 2
    assert result.lipschitz_bound == pytest.approx(max(result.extra["lipschitz_bound_per_output"]))
    proba = result.predictor.predict_proba(s.X_test)
    assert proba.shape == (60, 10) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert {r["lambda"] for r in result.curves} == {1e-4, 10.0}


@pytest.mark.parametrize(
    "params, task, message",
    [
        ({"variant": "l3-ib"}, "multiclass", "variant= one of"),
        ({"variant": "l2-ib", "prune_epochs": 1}, "multiclass", "needs an L1 variant"),
        ({"variant": "psilon", "prune_epochs": 9}, "multiclass", "prune_epochs <= epochs"),
        ({"variant": "psilon", "colour": 1}, "multiclass", "unknown parameter"),
        ({"variant": "psilon"}, "regression", "classifier"),
    ],
)
def test_fit_deep_resnet_refuses_bad_parameters(params, task, message):
    X, y = np.zeros((20, 784), np.float32), np.arange(20) % 10
    with pytest.raises(ValueError, match=message):
        fit_deep_resnet(X, y, X, y, task, TINY | {"lambdas": [1e-4]} | params)


def test_bench_deep_ablation_runs_end_to_end_resumes_and_reports_all_variants(tiny_mnist, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["bench", _tiny_protocol(tmp_path), "--out", str(out), "--datasets", "images:mnist-10k",
            "--data-dir", str(tiny_mnist), "--no-progress"]
    assert main(argv) == 0
    rows = ResultStore(out / "results.jsonl").rows()
    assert len(rows) == 10 and {r["status"] for r in rows} == {"ok"}
    by_label = {r["model"]: r for r in rows}
    for r in rows:
        test = r["metrics"]["test"]
        assert 0 <= test["accuracy"] <= 1 and test["log_loss"] > 0
        assert 0 < r["near_sparsity"] < 1 and 0 <= r["extra"]["exact_sparsity"] <= 1
        assert r["lipschitz_bound"] > 0 and r["fit_seconds"] > 0
        assert (out / r["curves_file"]).is_file() and "MNIST-10k" in r["data_description"]
    assert len(by_label["psilon-grid"]["path"]) == 7 and len(by_label["standard-grid"]["path"]) == 7
    assert by_label["psilon-pruned"]["extra"]["pruned"] and by_label["psilon-pruned"]["extra"]["exact_sparsity"] > 0.05
    assert by_label["psilon"]["extra"]["exact_sparsity"] == 0.0
    report = (out / "report.md").read_text()
    table = report[report.index("| variant |") :]
    for name in PAPER_NAMES:
        assert f"\n| {name} |" in table
    assert "images:mnist-10k" in report and "Not the paper's data" in report and "reduced, CPU-sized" in report
    assert "The paper's claim" in report and "--datasets images:mnist-10k" in report
    assert (out / "plots" / "ablation_curves_deep-ablation_images_mnist-10k.png").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["protocols"]["deep-ablation"]["ablation"]["datasets"]["images:mnist-10k"]["variants"]) == set(by_label)
    capsys.readouterr()
    assert main(argv) == 0  # resumed: nothing left to do
    assert "10 already done, 0 ok" in capsys.readouterr().out
    assert len((out / "commands.txt").read_text().splitlines()) == 1


def test_missing_fashion_mnist_fails_before_any_task_with_the_way_out(tiny_mnist, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["bench", _tiny_protocol(tmp_path, grids=False), "--out", str(out), "--data-dir", str(tiny_mnist),
            "--models", "psilon", "--no-progress"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "images:fashion-mnist is not available offline" in error and "--datasets images:mnist-10k" in error
    assert not (out / "results.jsonl").exists()


def _variant(variant, accuracy, ns, grid=False, pruned=False):
    return {"variant": variant, "accuracy": accuracy, "near_sparsity": ns, "grid": grid, "pruned": pruned, "n_test": 2000}


def test_claim_check_ranks_psilon_among_the_variants_at_their_paper_lambda():
    variants = {"psilon": _variant("psilon", 0.90, 0.6), "standard": _variant("standard", 0.905, 0.2),
                "l2-ib": _variant("l2-ib", 0.85, 0.3), "psilon-grid": _variant("psilon", 0.99, 0.9, grid=True),
                "psilon-pruned": _variant("psilon", 0.99, 0.95, pruned=True)}
    claim = _ablation_claim(variants)
    assert claim["compared"] == 3 and claim["accuracy_rank"] == 2 and claim["best"] == "standard"
    assert claim["tied_best"]  # 0.5 points is within two binomial standard errors (0.66 points each) on 2,000 images
    assert claim["near_sparsity_rank"] == 1 and claim["sparsest"] == "psilon"
    variants["standard"]["accuracy"] = 0.95
    assert not _ablation_claim(variants)["tied_best"]
    assert _ablation_claim({"standard": variants["standard"]}) is None
