"""Benchmark protocols as data.

A :class:`Protocol` names its datasets, how each is split (:class:`SplitSpec`), how the
data is preprocessed (:class:`Preprocessing`) and which models run with which parameters
(:class:`ModelSpec`, naming an entry of :mod:`psilon.bench.models`). It expands into
:class:`Task` objects (dataset x split x model) that the runner executes; a task's
:attr:`Task.key` hashes everything that determines its result, so a store of results can
be resumed.

Built-in protocols (:data:`PROTOCOLS`):

``paper-tabular``
    The "small tabular datasets" experiment of Hidden Synergy (paper notes P1.7) on the
    PMLB copies of ``../shared/data/pmlb`` with >= 5,000 rows and >= 10 features.
    Shuffle (seed 0), keep at most 20,000 rows, the first 2,000 train, the rest split in
    half: test, then validation. Features standardized on train; regression target
    ``(y - median) / (IQR / 2)`` fitted on train, and RMSE reported on that scale (as in
    the paper). spambase (4,601 rows) does not meet the 5,000-row rule and is left out.
``uci``
    The nine UCI regression sets with their 10 fixed splits. A validation part (20% of
    the training split, shuffled with the split's index as seed) is carved out for
    tuning; models are not refitted on train+validation. RMSE in the target's original
    units; reports give the mean and standard error over splits.
``smoke``
    Three scikit-learn bundled sets, small settings: a quick end-to-end check.
``deep-ablation`` / ``deep-ablation-paper``
    The deep ablation of Hidden Synergy (paper notes P1.8): seven normalization variants
    of a CReLU ResNet with 10 residual blocks (``depth=12``) on an image set, each at the
    paper's best lambda, plus lambda grids (one stacked run each) for PSiLON and
    Standard. ``deep-ablation-paper`` has the paper's settings (width 500, 400 epochs);
    ``deep-ablation`` is CPU-sized (see :data:`DEEP_ABLATION_CPU`). Both name the
    paper's Fashion-MNIST; where it is missing, run them with
    ``--datasets images:mnist-10k`` (the substitution is then in the task keys, the
    store and the report). Split: the image set's own benchmark split
    (``SplitSpec(kind="images")``, :func:`psilon.datasets.load_image_benchmark`).
``paper-exact``
    Issue #15: the paper's 30 tabular datasets (:data:`PAPER_30_DATASETS`) with the
    reference code's recipe on every point (:data:`PAPER_EXACT_RECIPE`: 4 weight layers,
    warm-started lambda path, one-cycle stepped per epoch of 5 batches, final_div_factor 2);
    PSiLON Net, StandardNet, linear, random forest; paper-tabular's split, 1 split.
``default-recipe-30``
    The same 30 datasets and network size with psilon's default recipe
    (:data:`DEFAULT_RECIPE`, ``max_steps='auto'``), PSiLON Net / ResNet, StandardNet,
    linear, random forest, HGB and RealMLP-TD, 3 splits.
``recipe-ablation``
    Issue #15's ablation on paper-tabular's 6 original sets: PSiLON Net and StandardNet
    moved from paper-tabular's recipe to paper-exact's one difference at a time
    (:data:`RECIPE_ABLATION_STEPS`); its end points reuse the two stores' rows.

A protocol can also be read from a JSON file (:func:`get_protocol` with a path), in the
layout of :meth:`Protocol.to_dict`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from psilon.datasets import Dataset, DatasetError, DatasetUnavailableError, resolve_name
from psilon.train import PAPER_LAMBDAS

__all__ = [
    "DEEP_ABLATION_CPU",
    "DEEP_ABLATION_GRIDS",
    "DEEP_ABLATION_PAPER",
    "DEEP_ABLATION_VARIANTS",
    "PAPER_30_DATASETS",
    "PAPER_EXACT_RECIPE",
    "ORIGINAL_6_DATASETS",
    "PAPER_LAMBDAS",
    "PROTOCOLS",
    "RECIPE_ABLATION_STEPS",
    "RIDGE_ALPHAS",
    "RF_MIN_SAMPLES_LEAF",
    "ModelSpec",
    "Preprocessing",
    "Protocol",
    "SplitSpec",
    "Task",
    "canonical_json",
    "deep_ablation_models",
    "deep_ablation_protocol",
    "fit_identity",
    "get_protocol",
    "row_fit_identity",
]

#: Ridge alphas 1e-6, 3e-6, ..., 30, 100 (logistic regression uses C = 1 / alpha).
RIDGE_ALPHAS: tuple[float, ...] = tuple(float(f"{m}e{e}") for e in range(-6, 2) for m in (1, 3)) + (100.0,)
#: Random forest leaf sizes tuned on validation (P1.7).
RF_MIN_SAMPLES_LEAF: tuple[int, ...] = (4, 8, 12, 16, 20, 30, 40, 50, 75, 100, 150, 200)


def canonical_json(value: Any) -> str:
    """Deterministic JSON (sorted keys, tuples as lists) used for hashing."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (tuple, set, frozenset, np.ndarray)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


@dataclass(frozen=True)
class SplitSpec:
    """How a dataset is split into train / validation / test.

    ``kind="shuffle"``: for each seed in ``seeds``, shuffle the rows, keep the first
    ``row_cap`` (all when ``None``), take the first ``n_train`` as training rows (an int
    count, or a fraction of the kept rows when < 1) and split the rest in half: test
    first, then validation.

    ``kind="fixed"``: the dataset's own fixed splits 0..n_splits-1 give train and test;
    a shuffled ``val_fraction`` of the training split becomes the validation set.

    ``kind="images"``: the train / validation / test split of
    :func:`psilon.datasets.load_image_benchmark` (seed = each of ``seeds``), for
    ``images:<name>`` datasets; features are used as loaded (pixels in [-1, 1]). The
    runner prepares it (:func:`psilon.bench.runner.prepare_image_split`), not :meth:`split`.
    """

    kind: Literal["shuffle", "fixed", "images"] = "shuffle"
    seeds: tuple[int, ...] = (0,)
    row_cap: int | None = 20_000
    n_train: int | float = 2_000
    n_splits: int = 10
    val_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.kind not in ("shuffle", "fixed", "images"):
            raise ValueError(f"SplitSpec.kind must be 'shuffle', 'fixed' or 'images', not {self.kind!r}")
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if self.kind != "fixed" and not self.seeds:
            raise ValueError(f"SplitSpec(kind={self.kind!r}) needs at least one seed")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), not {self.val_fraction}")
        if self.n_train <= 0:
            raise ValueError(f"n_train must be positive, not {self.n_train}")

    def defining(self) -> dict[str, Any]:
        """The fields that decide the rows of one split (given its id): ``seeds`` and
        ``n_splits`` only list which splits a protocol has, so two specs that differ there
        still give split ``i`` the same rows."""
        if self.kind == "shuffle":
            return {"kind": self.kind, "row_cap": self.row_cap, "n_train": self.n_train}
        if self.kind == "fixed":
            return {"kind": self.kind, "val_fraction": self.val_fraction}
        return {"kind": self.kind}

    @property
    def split_ids(self) -> tuple[int, ...]:
        """The split identifiers a dataset expands to (seeds, or fixed split indices)."""
        return tuple(range(self.n_splits)) if self.kind == "fixed" else self.seeds

    def split(self, dataset: Dataset, split_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row indices ``(train, validation, test)`` of split ``split_id`` of ``dataset``."""
        if self.kind == "images":
            raise ValueError(
                "SplitSpec(kind='images') is the image benchmark's own split: prepare it with "
                "psilon.bench.runner.prepare_image_split (or psilon.datasets.load_image_benchmark)"
            )
        if self.kind == "fixed":
            if dataset.n_splits == 0:
                raise DatasetError(
                    f"{dataset.name} has no fixed splits, but this protocol uses fixed splits (e.g. uci:<name>)"
                )
            train, test = dataset.fixed_split(split_id)
            train = np.random.default_rng(split_id).permutation(train)
            n_val = max(1, int(round(self.val_fraction * len(train))))
            return train[n_val:], train[:n_val], test
        order = np.random.default_rng(split_id).permutation(dataset.n_rows)
        if self.row_cap is not None:
            order = order[: self.row_cap]
        n_train = int(self.n_train) if self.n_train >= 1 else int(round(self.n_train * len(order)))
        if len(order) - n_train < 2:
            raise DatasetError(
                f"{dataset.name} has {len(order)} rows, too few for {n_train} training rows plus "
                "test and validation rows; use a fractional n_train or another dataset"
            )
        rest = order[n_train:]
        half = len(rest) // 2
        return order[:n_train], rest[half:], rest[:half]


@dataclass(frozen=True)
class Preprocessing:
    """Preprocessing fitted on the training rows of each split.

    ``standardize``: continuous features to zero mean, unit variance (categorical
    columns are one-hot encoded). ``target_scaling="robust"``: regression target
    ``(y - median) / (IQR / 2)``. ``metric_scale``: report regression errors on the
    ``"scaled"`` target or in the ``"original"`` units.
    """

    standardize: bool = True
    target_scaling: Literal["robust", "none"] = "robust"
    metric_scale: Literal["scaled", "original"] = "scaled"

    def __post_init__(self) -> None:
        if self.target_scaling not in ("robust", "none"):
            raise ValueError(f"target_scaling must be 'robust' or 'none', not {self.target_scaling!r}")
        if self.metric_scale not in ("scaled", "original"):
            raise ValueError(f"metric_scale must be 'scaled' or 'original', not {self.metric_scale!r}")


@dataclass(frozen=True, eq=False)
class ModelSpec:
    """A model in a protocol: a ``label`` (table column), a registry ``entry`` and its ``params``."""

    label: str
    entry: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Task:
    """One unit of work: fit and score one model on one split of one dataset."""

    protocol: str
    dataset: str
    split_id: int
    model: ModelSpec
    split: SplitSpec
    preprocessing: Preprocessing

    def identity(self) -> dict[str, Any]:
        """Everything that determines this task's result (what :attr:`key` hashes)."""
        return {
            "protocol": self.protocol,
            "dataset": self.dataset,
            "split_id": self.split_id,
            "split": asdict(self.split),
            "preprocessing": asdict(self.preprocessing),
            "model": self.model.label,
            "entry": self.model.entry,
            "params": self.model.params,
        }

    def fit_identity(self) -> str:
        """What decides the fit and its scores, whatever protocol and label it runs under
        (canonical JSON): two tasks with the same fit identity train the same model on the
        same rows. ``psilon bench --reuse`` copies finished rows between stores by it."""
        return fit_identity(self.dataset, self.split_id, self.split, asdict(self.preprocessing), self.model.entry,
                            self.model.params)

    @property
    def key(self) -> str:
        """Stable task id: a hash of :meth:`identity`."""
        return hashlib.sha256(canonical_json(self.identity()).encode()).hexdigest()[:20]


def fit_identity(dataset: str, split_id: int, split: SplitSpec, preprocessing: dict[str, Any], entry: str,
                 params: dict[str, Any]) -> str:
    """Canonical JSON of a fit's identity (see :meth:`Task.fit_identity`); also computed
    from a stored row's fields."""
    return canonical_json({"dataset": dataset, "split_id": int(split_id), "split": split.defining(),
                           "preprocessing": preprocessing, "entry": entry, "params": params})


def row_fit_identity(row: dict[str, Any]) -> str | None:
    """:func:`fit_identity` of a stored result row; ``None`` when the row lacks a field of it."""
    try:
        split = SplitSpec(**{k: tuple(v) if k == "seeds" else v for k, v in row["split"].items()})
        return fit_identity(row["dataset"], row["split_id"], split, row["preprocessing"], row["entry"], row["params"])
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True, eq=False)
class Protocol:
    """A named benchmark: datasets x splits x models, with fixed preprocessing."""

    name: str
    description: str
    datasets: tuple[str, ...]
    models: tuple[ModelSpec, ...]
    split: SplitSpec = SplitSpec()
    preprocessing: Preprocessing = Preprocessing()

    def __post_init__(self) -> None:
        labels = [m.label for m in self.models]
        if len(set(labels)) != len(labels):
            raise ValueError(f"protocol {self.name!r} has duplicate model labels: {labels}")

    def tasks(
        self,
        datasets: list[str] | None = None,
        models: list[str] | None = None,
        data_dir: str | os.PathLike | None = None,
        *,
        resolve: bool = True,
    ) -> list[Task]:
        """Expand to tasks, optionally for other ``datasets`` or a subset of ``models`` (labels).

        Dataset names are resolved to qualified names (raising a clear error when unknown).
        ``resolve=False`` takes the names as they are, without looking at the data: for a
        protocol read back from a store's ``protocol.json``, whose names are qualified.
        """
        names = list(self.datasets if datasets is None else datasets)
        try:
            qualified = list(dict.fromkeys(resolve_name(n, data_dir) if resolve else n for n in names))
        except DatasetUnavailableError as exc:
            if self.split.kind != "images":
                raise
            raise DatasetUnavailableError(
                f"{exc}. To run protocol {self.name!r} on the image set that is here, pass --datasets images:mnist-10k "
                "(its report then names MNIST-10k)"
            ) from None
        if self.split.kind == "images":
            other = [q for q in qualified if not q.startswith("images:")]
            if other:
                raise ValueError(
                    f"protocol {self.name!r} uses the image benchmark split, which needs images:<name> datasets "
                    f"(images:fashion-mnist, images:mnist-10k), not {', '.join(other)}"
                )
        chosen = list(self.models)
        if models is not None:
            by_label = {m.label: m for m in self.models}
            unknown = [m for m in models if m not in by_label]
            if unknown:
                raise ValueError(
                    f"protocol {self.name!r} has no model(s) {', '.join(unknown)}; "
                    f"its models are: {', '.join(by_label)}"
                )
            chosen = [by_label[m] for m in dict.fromkeys(models)]
        return [
            Task(self.name, d, s, m, self.split, self.preprocessing)
            for d in qualified
            for s in self.split.split_ids
            for m in chosen
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, read back by :meth:`from_dict`."""
        return json.loads(
            canonical_json(
                {
                    "name": self.name,
                    "description": self.description,
                    "datasets": self.datasets,
                    "models": [asdict(m) for m in self.models],
                    "split": asdict(self.split),
                    "preprocessing": asdict(self.preprocessing),
                }
            )
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Protocol:
        """Build a protocol from :meth:`to_dict`'s layout (``split``/``preprocessing`` optional)."""
        missing = {"name", "datasets", "models"} - set(data)
        if missing:
            raise ValueError(f"a protocol needs the field(s) {', '.join(sorted(missing))}")
        return cls(
            name=str(data["name"]),
            description=str(data.get("description", "")),
            datasets=tuple(data["datasets"]),
            models=tuple(ModelSpec(m["label"], m.get("entry", m["label"]), dict(m.get("params", {}))) for m in data["models"]),
            split=SplitSpec(**data.get("split", {})),
            preprocessing=Preprocessing(**data.get("preprocessing", {})),
        )


#: psilon's default recipe (the estimators' defaults, see ``psilon.estimators``): the
#: paper's init, Adam's peak learning rate 1e-2 with 5x on the lengths, the best
#: validation state per lambda and early stopping, both on the validation objective.
#: Protocols without it run the paper's recipe (``psilon.bench.models.PAPER_RECIPE``: lr
#: 2e-3, 1x).
DEFAULT_RECIPE: dict[str, Any] = {"learning_rate": 1e-2, "length_lr_scale": 5.0, "restore": "best", "patience": 20,
                                  "monitor": "objective"}


#: Text of the default recipe's learning rates, for the protocols' descriptions.
_DEFAULT_LR_TEXT = f"lr {DEFAULT_RECIPE['learning_rate']:g}, {DEFAULT_RECIPE['length_lr_scale']:g}x on the lengths"
#: Text of the default recipe's stopping rule, for the protocols' descriptions.
_DEFAULT_STOP_TEXT = (
    f"early stopping (patience {DEFAULT_RECIPE['patience']} evaluations) and best state per lambda on the validation "
    + {"objective": "objective", "data": "data loss"}[DEFAULT_RECIPE["monitor"]]
)

class SweepSetting(NamedTuple):
    """One setting of the recipe sweeps: Adam's learning rate, the lengths' scale of it, and
    optionally successive halving, a fixed step budget and the lengths' init scheme."""

    lr: float
    scale: float
    halving: bool = False
    max_steps: int | str = "auto"
    init: str | None = None  # None: the estimators' default
    monitor: str | None = None  # None: PAPER_RECIPE's fallback, the validation data loss

    def suffix(self) -> str:
        return (f"@lr{self.lr:g}x{self.scale:g}" + ("+halving" if self.halving else "")
                + (f"+steps{self.max_steps}" if self.max_steps != "auto" else "")
                + (f"+init-{self.init}" if self.init else "")
                + (f"+monitor-{self.monitor}" if self.monitor else ""))


#: The settings of the ``recipe-sweep`` protocol: the first default (lr 2e-3 x 30), the
#: second (5e-3 x 10), the fastest (1e-2 x 10), 5e-3 x 10 with successive halving over the
#: lambdas, today's default (1e-2 x 5: the second default's length rate, twice its weight
#: rate), and today's default with the ResNet's residual blocks open at init (``init='open'``)
#: or with the variance-preserving lengths (``init='variance'``); then today's default with
#: early stopping on the validation objective (``monitor='objective'``), with either init.
RECIPE_SWEEP: tuple[SweepSetting, ...] = (
    SweepSetting(2e-3, 30.0), SweepSetting(5e-3, 10.0), SweepSetting(1e-2, 10.0), SweepSetting(5e-3, 10.0, halving=True),
    SweepSetting(1e-2, 5.0), SweepSetting(1e-2, 5.0, init="open"), SweepSetting(1e-2, 5.0, init="variance"),
    SweepSetting(1e-2, 5.0, monitor="objective"), SweepSetting(1e-2, 5.0, init="variance", monitor="objective"),
)


def _recipe_sweep_models(settings=RECIPE_SWEEP, width: int = 128) -> tuple[ModelSpec, ...]:
    """PSiLON Net and ResNet at ``width``, depth 3, 13 lambdas, once per :class:`SweepSetting`
    (the ResNet alone for ``init='open'``, which is the paper's init for an MLP); labels
    ``<entry>@lr<lr>x<scale>[+halving][+steps<n>][+init-<scheme>][+monitor-<monitor>]``."""
    # the sweep chose the learning rates with early stopping on the data loss (the monitor
    # of the time, PAPER_RECIPE's fallback): its settings name a monitor only when they
    # change it, so that the rows made before keep their task keys
    base = {k: v for k, v in DEFAULT_RECIPE.items() if k != "monitor"}
    models = []
    for setting in settings:
        recipe = {**base, "learning_rate": setting.lr, "length_lr_scale": setting.scale,
                  **({"halving": True} if setting.halving else {}), **({"init": setting.init} if setting.init else {}),
                  **({"monitor": setting.monitor} if setting.monitor else {})}
        nets = _network_models(width=width, depth=3, lambdas=PAPER_LAMBDAS, max_steps=setting.max_steps, recipe=recipe)
        wanted = ("psilon-resnet",) if setting.init == "open" else ("psilon-net", "psilon-resnet")
        models += [ModelSpec(m.label + setting.suffix(), m.entry, m.params) for m in nets if m.label in wanted]
    return tuple(models)


def _network_models(width: int, depth: int, lambdas, max_steps: int | str, batch_size: int = 400,
                    recipe: dict[str, Any] | None = None) -> tuple[ModelSpec, ...]:
    common = {
        "width": width,
        "depth": depth,
        "lambdas": list(lambdas),
        "max_steps": max_steps,
        "batch_size": batch_size,
        "selection": "holdout",
        **(recipe or {}),
    }
    return (
        ModelSpec("standard-net", "standard-net", {"architecture": "mlp", **common}),
        ModelSpec("psilon-net", "psilon-net", {"architecture": "mlp", **common}),
        ModelSpec("psilon-resnet", "psilon-resnet", {"architecture": "resnet", **common}),
    )


_BASELINES: tuple[ModelSpec, ...] = (
    ModelSpec("linear", "linear", {"alphas": list(RIDGE_ALPHAS)}),
    ModelSpec("random-forest", "random-forest", {"n_estimators": 1000, "min_samples_leaf": list(RF_MIN_SAMPLES_LEAF)}),
    ModelSpec("hist-gb", "hist-gb", {"max_iter": 1000, "learning_rate": [0.03, 0.1, 0.3], "early_stopping": True}),
    ModelSpec("mlp", "mlp", {"hidden_layer_sizes": [256, 256], "alpha": [1e-4, 1e-2, 1.0], "max_iter": 500}),
    ModelSpec("realmlp-td", "realmlp-td", {}),
    ModelSpec("tabm-d", "tabm-d", {}),
)
#: The baselines that need no optional package (linear, random forest, HGB, scikit-learn's MLP).
_SKLEARN_BASELINES = tuple(m for m in _BASELINES if m.entry not in ("realmlp-td", "tabm-d"))
_FULL_MODELS = _BASELINES + _network_models(width=500, depth=3, lambdas=PAPER_LAMBDAS, max_steps=5000)
#: UCI: 9 sets x 10 splits x 3 networks would take > 100 CPU hours at paper size; the sets
#: have 200-1,300 training rows, so the networks are narrower (width 128). They keep the
#: paper's 5,000 steps: at 1,000 steps PSiLON Net is still converging (uci:energy, 2 splits:
#: RMSE 2.01 at 1,000 steps, 1.27 at 3,000, 0.46 at 5,000; docs/results/uci-energy-steps).
_UCI_MODELS = _BASELINES + _network_models(width=128, depth=3, lambdas=PAPER_LAMBDAS, max_steps=5000)

#: PMLB sets of the local cache with >= 5,000 rows and >= 10 features (spambase: 4,601 rows, out).
PAPER_TABULAR_DATASETS: tuple[str, ...] = (
    # regression (cpu_act, pol, house_16H are in OpenML suite 336)
    "pmlb:197_cpu_act", "pmlb:201_pol", "pmlb:574_house_16H", "pmlb:227_cpu_small",
    "pmlb:503_wind", "pmlb:564_fried", "pmlb:215_2dplanes",
    # binary classification (MagicTelescope is in suite 337)
    "pmlb:magic", "pmlb:twonorm", "pmlb:churn", "pmlb:clean2",
    # multiclass
    "pmlb:waveform_40", "pmlb:texture", "pmlb:optdigits", "pmlb:satimage",
)

UCI_DATASETS: tuple[str, ...] = tuple(
    f"uci:{n}" for n in ("yacht", "concrete", "energy", "housing", "wine", "airfoil", "autompg", "servo", "machine")
)

#: The deep ablation's variants (labels, entry ``deep-resnet``'s ``variant``) with the paper's best lambdas (P1.8).
DEEP_ABLATION_VARIANTS: tuple[tuple[str, str, float], ...] = (
    ("psilon", "psilon", 2.5e-4),
    ("l1-ib", "l1-ib", 2.5e-4),
    ("l2-ib", "l2-ib", 2.5e-4),
    ("l1-ob", "l1-ob", 1e-4),
    ("l2-ob", "l2-ob", 1e-4),
    ("standard", "standard", 2.5e-2),
    ("projected-psilon", "projected", 2.5e-4),
)
#: Lambda grids of the deep ablation: Standard, and every other variant.
DEEP_ABLATION_GRIDS: dict[str, tuple[float, ...]] = {
    "standard": (1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 1e-1),
    "other": (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3),
}
#: Settings of the paper (width 500, 10 blocks = depth 12, 400 epochs of batch 200, Adam lr 2e-2).
DEEP_ABLATION_PAPER: dict[str, Any] = {"width": 500, "depth": 12, "epochs": 400, "batch_size": 200,
                                       "learning_rate": 2e-2, "eval_every_epochs": 5}
#: CPU-sized settings. Measured on MNIST-10k (6,000 training images, 30 steps per epoch),
#: one thread of a shared 2-core machine: 40-70 ms per step at width 128, 70-150 ms at
#: width 256 (depth 12). At width 128 and 100 epochs (3,000 steps) a variant takes about
#: 2.5 minutes, the seven about 20 minutes and each 7-member grid about 15 minutes:
#: under one CPU-hour in all. Same depth, batch, learning rate and schedule as the paper.
DEEP_ABLATION_CPU: dict[str, Any] = DEEP_ABLATION_PAPER | {"width": 128, "epochs": 100}


def deep_ablation_models(settings: dict[str, Any], *, grids: bool = True) -> tuple[ModelSpec, ...]:
    """The seven variants of the deep ablation at the paper's lambdas, PSiLON with pruning over
    the last 10% of the epochs (``psilon-pruned``), then (``grids``) the lambda grids of
    PSiLON and Standard as one stacked run each; ``settings`` are the ``deep-resnet``
    parameters shared by all (width, depth, epochs, ...)."""
    models = [ModelSpec(label, "deep-resnet", {"variant": variant, "lambdas": [lam], **settings})
              for label, variant, lam in DEEP_ABLATION_VARIANTS]
    # PSiLON with a pruning phase over the last 10% of the epochs (P1.5): exact sparsity after pruning
    models.append(ModelSpec("psilon-pruned", "deep-resnet", {"variant": "psilon", "lambdas": [2.5e-4], **settings,
                                                             "prune_epochs": max(1, settings["epochs"] // 10)}))
    if grids:
        for label, variant, grid in (("psilon-grid", "psilon", DEEP_ABLATION_GRIDS["other"]),
                                     ("standard-grid", "standard", DEEP_ABLATION_GRIDS["standard"])):
            models.append(ModelSpec(label, "deep-resnet", {"variant": variant, "lambdas": list(grid), **settings}))
    return tuple(models)


def deep_ablation_protocol(name: str, settings: dict[str, Any], size: str, *, grids: bool = True,
                           datasets: tuple[str, ...] = ("images:fashion-mnist",), seeds: tuple[int, ...] = (0,)) -> Protocol:
    """A deep-ablation protocol with the given ``deep-resnet`` settings; ``size`` names them in the description."""
    s = settings
    description = (
        f"Hidden Synergy deep ablation (P1.8), {size} settings: CReLU ResNet width {s['width']}, depth {s['depth']} "
        f"({s['depth'] - 2} residual blocks), {s['epochs']} epochs of batch {s['batch_size']}, Adam lr "
        f"{s['learning_rate']:g} one-cycle (stepped per epoch), validation every {s['eval_every_epochs']} epochs; "
        "seven variants at the paper's lambdas, PSiLON with pruning over the last 10% of the epochs"
        + (", plus lambda grids of PSiLON and Standard (one stacked run each)" if grids else "")
        + "; image benchmark split (the paper: Fashion-MNIST; elsewhere run with --datasets images:mnist-10k)"
    )
    return Protocol(name=name, description=description, datasets=datasets, models=deep_ablation_models(s, grids=grids),
                    split=SplitSpec(kind="images", seeds=seeds),
                    preprocessing=Preprocessing(standardize=False, target_scaling="none", metric_scale="scaled"))


#: The paper's 30 tabular datasets (issue #15) as PMLB copies of ``../shared/data/pmlb``:
#: 9 regression, 8 binary, 13 multiclass. wine_quality_white is PMLB's 7-class set read as a
#: regression target (``@regression``, as in the paper's OpenML suite); 294_satellite_image
#: is left out (satimage is the same data as classification).
PAPER_30_DATASETS: dict[str, tuple[str, ...]] = {
    "regression": (
        "pmlb:197_cpu_act", "pmlb:227_cpu_small", "pmlb:201_pol", "pmlb:574_house_16H", "pmlb:215_2dplanes",
        "pmlb:564_fried", "pmlb:503_wind", "pmlb:1203_BNG_pwLinear", "pmlb:wine_quality_white@regression",
    ),
    "binary": (
        "pmlb:magic", "pmlb:spambase", "pmlb:twonorm", "pmlb:churn", "pmlb:clean2", "pmlb:coil2000",
        "pmlb:mushroom", "pmlb:hypothyroid",
    ),
    "multiclass": (
        "pmlb:waveform_40", "pmlb:texture", "pmlb:optdigits", "pmlb:satimage", "pmlb:letter", "pmlb:page_blocks",
        "pmlb:waveform_21", "pmlb:ann_thyroid", "pmlb:sleep", "pmlb:connect_4", "pmlb:dna", "pmlb:splice",
        "pmlb:led24",
    ),
}
#: The reference code's training recipe (paper notes P1.7), every setting spelled out in the
#: task parameters: the paper's init and learning rates, the final state of each lambda, no
#: early stopping, 5,000 steps per lambda, the warm-started path (lambdas in increasing order,
#: each from the previous one's final weights with a fresh Adam and schedule), one-cycle
#: stepped once per epoch of 5 batches and ending at lr / 20 / final_div_factor, with
#: final_div_factor = (lr / 1e-4) / 10 = 2 at lr 2e-3.
PAPER_EXACT_RECIPE: dict[str, Any] = {
    "init": "paper", "length_lr_scale": 1.0, "restore": "final", "patience": None,
    "path": "warm", "lr_step_every": 5, "final_div_factor": (2e-3 / 1e-4) / 10, "learning_rate": 2e-3,
}


#: The 6 paper-tabular sets that paper-tabular and paper-tabular-default have run (issue #15's ablation).
ORIGINAL_6_DATASETS: tuple[str, ...] = (
    "pmlb:197_cpu_act", "pmlb:201_pol", "pmlb:574_house_16H", "pmlb:magic", "pmlb:twonorm", "pmlb:churn",
)
#: From paper-tabular's recipe to paper-exact's, one difference of issue #15 added at a time:
#: ``(step label, depth, recipe)``. ``tabular`` is paper-tabular's networks (3 weight layers,
#: independent path, one-cycle stepped every batch and ending at lr / 25 / 1e4); ``schedule``
#: adds the reference's schedule (stepped once per 5 batches, final_div_factor 2); ``depth4``
#: adds its 4th weight layer; ``exact`` adds the warm-started path, which is paper-exact.
_REFERENCE_SCHEDULE = {k: PAPER_EXACT_RECIPE[k] for k in ("lr_step_every", "final_div_factor")}
RECIPE_ABLATION_STEPS: tuple[tuple[str, int, dict[str, Any]], ...] = (
    ("tabular", 3, {}),
    ("schedule", 3, _REFERENCE_SCHEDULE),
    ("schedule+depth4", 4, _REFERENCE_SCHEDULE),
    ("exact", 4, PAPER_EXACT_RECIPE),
)


def _recipe_ablation_models() -> tuple[ModelSpec, ...]:
    """PSiLON Net and StandardNet at each of :data:`RECIPE_ABLATION_STEPS` (labels
    ``<net>@<step>``); their params equal paper-tabular's at ``tabular`` and paper-exact's at
    ``exact``, so ``--reuse`` takes those from the two stores."""
    models = []
    for step, depth, recipe in RECIPE_ABLATION_STEPS:
        nets = _network_models(width=500, depth=depth, lambdas=PAPER_LAMBDAS, max_steps=5000, recipe=recipe or None)
        models += [ModelSpec(f"{m.label}@{step}", m.entry, m.params) for m in nets if m.label != "psilon-resnet"]
    return tuple(models)


def _paper_30_protocols() -> tuple[Protocol, ...]:
    """``paper-exact`` (the reference's recipe, 1 split) and ``default-recipe-30`` (psilon's
    default recipe, 3 splits) on :data:`PAPER_30_DATASETS`; both with the reference's
    network (width 500, 4 weight layers) and paper-tabular's split and preprocessing. And
    ``recipe-ablation``: the steps between paper-tabular and paper-exact on
    :data:`ORIGINAL_6_DATASETS`."""
    datasets = tuple(d for group in PAPER_30_DATASETS.values() for d in group)
    split = dict(kind="shuffle", row_cap=20_000, n_train=2_000)
    preprocessing = Preprocessing(standardize=True, target_scaling="robust", metric_scale="scaled")
    baselines = {m.label: m for m in _BASELINES}
    exact_nets = {m.label: m for m in _network_models(width=500, depth=4, lambdas=PAPER_LAMBDAS, max_steps=5000,
                                                       recipe=PAPER_EXACT_RECIPE)}
    default_nets = {m.label: m for m in _network_models(width=500, depth=4, lambdas=PAPER_LAMBDAS, max_steps="auto",
                                                         recipe=DEFAULT_RECIPE)}
    exact = Protocol(
        name="paper-exact",
        description=(
            "Hidden Synergy Table 1 (P1.7) on the paper's 30 datasets (PMLB copies) with the reference code's recipe: "
            "width 500, 4 weight layers, warm-started lambda path (13 lambdas, increasing, 5,000 steps each, fresh "
            "Adam lr 2e-3 and one-cycle per lambda, stepped once per 5 batches, final_div_factor 2), paper init, final "
            "state; 20,000-row cap, 2,000 training rows, rest halved into test then validation; 1 split"
        ),
        datasets=datasets,
        models=(baselines["linear"], baselines["random-forest"], exact_nets["standard-net"], exact_nets["psilon-net"]),
        split=SplitSpec(seeds=(0,), **split),
        preprocessing=preprocessing,
    )
    default = Protocol(
        name="default-recipe-30",
        description=(
            f"The paper's 30 datasets (PMLB copies) with psilon's default recipe ({_DEFAULT_LR_TEXT}, {_DEFAULT_STOP_TEXT}, "
            "max_steps 'auto', independent lambda path), width 500, 4 weight layers, 13 lambdas; "
            "paper-tabular's split and preprocessing; 3 splits"
        ),
        datasets=datasets,
        models=(baselines["linear"], baselines["random-forest"], baselines["hist-gb"], baselines["realmlp-td"],
                default_nets["standard-net"], default_nets["psilon-net"], default_nets["psilon-resnet"]),
        split=SplitSpec(seeds=(0, 1, 2), **split),
        preprocessing=preprocessing,
    )
    ablation = Protocol(
        name="recipe-ablation",
        description=(
            "Issue #15's ablation: paper-exact's models on the 6 sets paper-tabular ran (cpu_act, pol, house_16H, "
            "magic, twonorm, churn), its networks moved from paper-tabular's recipe to paper-exact's one difference "
            "at a time: @tabular (3 weight layers, independent path, one-cycle per batch), @schedule (the "
            "reference's one-cycle: per 5 batches, final_div_factor 2), @schedule+depth4 (4 weight layers), @exact "
            "(warm-started path: paper-exact); run with --reuse of the paper-tabular and paper-exact stores"
        ),
        datasets=ORIGINAL_6_DATASETS,
        models=(baselines["linear"], baselines["random-forest"]) + _recipe_ablation_models(),
        split=SplitSpec(seeds=(0,), **split),
        preprocessing=preprocessing,
    )
    return exact, default, ablation


#: paper-tabular's split and preprocessing (also its -default and recipe-sweep-tabular variants).
_PAPER_TABULAR_SPLIT = SplitSpec(kind="shuffle", seeds=(0,), row_cap=20_000, n_train=2_000)
_PAPER_TABULAR_PREP = Preprocessing(standardize=True, target_scaling="robust", metric_scale="scaled")
#: uci's 10 fixed splits and preprocessing (also uci-default and recipe-sweep).
_UCI_SPLIT = SplitSpec(kind="fixed", n_splits=10, val_fraction=0.2)
_UCI_PREP = Preprocessing(standardize=True, target_scaling="robust", metric_scale="original")

PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            name="paper-tabular",
            description=(
                "Hidden Synergy Table 1 (P1.7) on PMLB copies: 20,000-row cap, 2,000 training rows, "
                "rest halved into test then validation; width 500, depth 3, 5,000 steps, 13 lambdas"
            ),
            datasets=PAPER_TABULAR_DATASETS,
            models=_FULL_MODELS,
            split=_PAPER_TABULAR_SPLIT,
            preprocessing=_PAPER_TABULAR_PREP,
        ),
        Protocol(
            name="paper-tabular-default",
            description=(
                "The paper-tabular protocol (same sets, split, preprocessing, baselines, width 500, depth 3, 13 "
                f"lambdas) with the networks on psilon's default recipe ({_DEFAULT_LR_TEXT}, max_steps 'auto': 2,000 here, "
                f"{_DEFAULT_STOP_TEXT}); compare with the paper-tabular report (the paper's recipe)"
            ),
            datasets=PAPER_TABULAR_DATASETS,
            models=_SKLEARN_BASELINES + _network_models(width=500, depth=3, lambdas=PAPER_LAMBDAS, max_steps="auto",
                                                        recipe=DEFAULT_RECIPE),
            split=_PAPER_TABULAR_SPLIT,
            preprocessing=_PAPER_TABULAR_PREP,
        ),
        Protocol(
            name="uci",
            description=(
                "UCI regression with the 10 fixed splits (20% of each training split for validation); "
                "RMSE in original units, mean and standard error over splits; networks width 128, depth 3, "
                "5,000 steps, 13 lambdas"
            ),
            datasets=UCI_DATASETS,
            models=_UCI_MODELS,
            split=_UCI_SPLIT,
            preprocessing=_UCI_PREP,
        ),
        Protocol(
            name="uci-default",
            description=(
                "The uci protocol (same sets, 10 fixed splits, baselines, width 128, depth 3, 13 lambdas) with "
                f"the networks on psilon's default recipe: {_DEFAULT_LR_TEXT}, max_steps 'auto' (1,000 "
                f"here), {_DEFAULT_STOP_TEXT}; compare with the uci report (the "
                "paper's recipe)"
            ),
            datasets=UCI_DATASETS,
            models=_BASELINES + _network_models(width=128, depth=3, lambdas=PAPER_LAMBDAS, max_steps="auto",
                                                recipe=DEFAULT_RECIPE),
            split=_UCI_SPLIT,
            preprocessing=_UCI_PREP,
        ),
        Protocol(
            name="recipe-sweep",
            description=(
                "How psilon's default learning rates were chosen: uci-default's sets, splits and networks "
                "(PSiLON Net and ResNet) at four (lr, length lr scale) pairs: 2e-3 x 30, 5e-3 x 10, 1e-2 x 10, "
                "1e-2 x 5; 5e-3 x 10 with successive halving; 1e-2 x 5 with the ResNet's blocks open at init "
                "(init='open') and with init='variance'; 1e-2 x 5 with monitor='objective' (early stopping on the validation "
                "objective), with the paper init and with init='variance'; compare with the uci report by "
                "benchmarks/bench_convergence.py"
            ),
            datasets=UCI_DATASETS,
            models=_recipe_sweep_models(),
            split=_UCI_SPLIT,
            preprocessing=_UCI_PREP,
        ),
        Protocol(
            name="recipe-sweep-tabular",
            description=(
                "recipe-sweep's fastest setting (lr 1e-2 x 10), and the default (1e-2 x 5) at the former 1,000-step "
                "budget instead of 'auto' (2,000 here), on paper-tabular's sets, split and networks (width 500, depth 3); "
                "the default itself is paper-tabular-default; compare with the paper-tabular report by "
                "benchmarks/bench_convergence.py"
            ),
            datasets=PAPER_TABULAR_DATASETS,
            models=_recipe_sweep_models((SweepSetting(1e-2, 10.0), SweepSetting(1e-2, 5.0, max_steps=1000)), width=500),
            split=_PAPER_TABULAR_SPLIT,
            preprocessing=_PAPER_TABULAR_PREP,
        ),
        Protocol(
            name="smoke",
            description="Quick end-to-end check on scikit-learn's bundled sets with small settings",
            datasets=("sklearn:diabetes", "sklearn:breast_cancer", "sklearn:wine"),
            models=(
                ModelSpec("linear", "linear", {"alphas": list(RIDGE_ALPHAS)}),
                ModelSpec("random-forest", "random-forest", {"n_estimators": 100, "min_samples_leaf": [4, 16, 50]}),
                ModelSpec("hist-gb", "hist-gb", {"max_iter": 300, "learning_rate": [0.1], "early_stopping": True}),
                ModelSpec("mlp", "mlp", {"hidden_layer_sizes": [64], "alpha": [1e-3, 1e-1], "max_iter": 300}),
                ModelSpec("realmlp-td", "realmlp-td", {"n_epochs": 8}),
                ModelSpec("tabm-d", "tabm-d", {"n_epochs": 8}),
            )
            + _network_models(width=64, depth=3, lambdas=(1e-4, 1e-3, 1e-2, 1e-1), max_steps=300,
                              recipe=DEFAULT_RECIPE),
            split=SplitSpec(kind="shuffle", seeds=(0, 1, 2), row_cap=None, n_train=0.6),
            preprocessing=Preprocessing(standardize=True, target_scaling="robust", metric_scale="scaled"),
        ),
        deep_ablation_protocol("deep-ablation", DEEP_ABLATION_CPU, "CPU-sized"),
        deep_ablation_protocol("deep-ablation-paper", DEEP_ABLATION_PAPER, "paper"),
    )
    + _paper_30_protocols()
}


def get_protocol(name_or_path: str | os.PathLike) -> Protocol:
    """A built-in protocol by name, or one read from a JSON file path."""
    text = str(name_or_path)
    if text in PROTOCOLS:
        return PROTOCOLS[text]
    path = Path(text)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise ValueError(f"protocol file {text!r} does not exist")
        try:
            return Protocol.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError, KeyError) as exc:
            raise ValueError(f"protocol file {text!r} is not a valid protocol: {exc}") from None
    raise ValueError(f"unknown protocol {text!r}; built-in protocols: {', '.join(PROTOCOLS)} (or a .json file)")
