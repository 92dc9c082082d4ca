"""The study's design, read from a validated workflow config: which runs are trained and
analysed, at which checkpoints, with which seeds, and the settings each job receives.

The Snakefile builds one :class:`StudyDesign` and expands the DAG over it; jobs receive
their settings as plain ``params`` (never the whole config), so this module is the one
place where config keys turn into the arguments of the package's functions. Nothing
here imports torch: the Snakefile reads it at parse time.

Design decisions where the paper is silent are documented in the config schema
(``workflow/schemas/config.schema.yaml``) and docs/readings.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .catalog import DatasetFacts, configured_facts, folder_root
from .layout import BEST_LABEL, Layout, checkpoint_label
from .vocabulary import BEST, CLASSIFICATION, DEFAULT_VARIANT, SCRATCH, Run

#: Training keys that describe the optimisation (config ``finetune``, ``variants`` and
#: ``sources.<name>.finetune``).
TRAINING_KEYS = (
    "epochs",
    "schedule_epochs",
    "batch_size",
    "optimizer",
    "lr",
    "weight_decay",
    "warmup_steps",
    "grad_clip",
    "augment",
    "num_workers",
    "precision",
    "compile",
    "seed",
)


#: The model input size when neither ``image_size`` nor ``overrides.img_size`` says it
#: (the paper's ViT-B/32; config.check_model refuses a model whose own size differs).
DEFAULT_IMAGE_SIZE = 224
IMAGENET_ROLE = "ImageNet"  # what the source config imagenet_source plays


def model_image_size(model: dict[str, Any]) -> int:
    """The input size of a config model block: ``image_size``, else ``overrides.img_size``,
    else :data:`DEFAULT_IMAGE_SIZE`."""
    return int(model.get("image_size", model.get("overrides", {}).get("img_size", DEFAULT_IMAGE_SIZE)))


@dataclass(frozen=True)
class PretrainedInversion:
    """One inversion job of a source model: its layers inverted for the images of one seed."""

    source: str
    dataset: str
    seed: int


@dataclass(frozen=True)
class PairJob:
    """One STIR job: a run's checkpoint (label) against its source, for one seed."""

    run: Run
    checkpoint: str
    seed: int


class StudyDesign:
    """The design of one configured study (a config validated by the schema and
    :func:`finetune_invariance.study.config.check_config`)."""

    def __init__(self, config: dict[str, Any], workflow_dir: str | Path = "."):
        self.config = config
        self.layout = Layout(config["results"], config["data_root"])
        self.workflow_dir = Path(workflow_dir)
        self._facts: dict[str, DatasetFacts] = {}  # a folder dataset is scanned once per design

    # --- sources ----------------------------------------------------------------------

    def source_weights(self, source: str) -> str:
        return self.config["sources"][source]["weights"]

    def model_entry(self, source: str | None = None) -> dict[str, Any]:
        """The config model block of ``source`` (None: the top-level ``model``): its own
        ``sources.<name>.model``, for a ``pretrain:`` source the scratch source's (it is that
        model trained), else the top-level ``model``."""
        if source is None:
            return self.config["model"]
        entry = self.config["sources"][source]
        if entry["weights"].startswith("pretrain:") and SCRATCH in self.config["sources"]:
            return self.model_entry(SCRATCH)
        return entry.get("model", self.config["model"])

    @property
    def compares_models(self) -> bool:
        """Whether the analysed runs start from more than one model (sources with their own
        ``model``): the study then compares the models (the source-model comparison)."""
        names = {repr(sorted(self.model_entry(run.source).items())) for run in self.runs()}
        return len(names) > 1

    def pretraining_run(self, source: str) -> Run | None:
        """The run that trains a ``pretrain:<dataset>`` source: classification of the dataset
        from scratch (the same training as the run scratch -> dataset, docs/method.md), with the
        source's ``variant``; None for other sources."""
        weights = self.source_weights(source)
        if not weights.startswith("pretrain:"):
            return None
        variant = self.config["sources"][source].get("variant", DEFAULT_VARIANT)
        return Run(SCRATCH, weights.split(":", 1)[1], CLASSIFICATION, variant)

    def pretraining_runs(self) -> set[Run]:
        """The runs that train the ``pretrain:`` sources."""
        return {self.pretraining_run(source) for source in self.config["sources"]} - {None}

    # --- what each dataset and source plays in the paper's design ------------------------

    def dataset_roles(self) -> dict[str, str]:
        """Each dataset -> the paper's dataset it plays (config ``datasets.<name>.plays``)."""
        return {name: entry["plays"] for name, entry in self.config["datasets"].items() if "plays" in entry}

    def source_roles(self) -> dict[str, str]:
        """Each source -> the paper's pretraining it plays: ``imagenet_source`` ImageNet, a
        ``pretrain:<dataset>`` source what its dataset plays; scratch and the other sources
        none."""
        datasets = self.dataset_roles()
        roles = {}
        for source in self.config["sources"]:
            run = self.pretraining_run(source)
            if run is not None and run.dataset in datasets:
                roles[source] = datasets[run.dataset]
        if self.config.get("imagenet_source") in self.config["sources"]:
            roles[self.config["imagenet_source"]] = IMAGENET_ROLE
        return roles

    def training_priority(self, run: Run) -> int:
        """Scheduling priority of a run's training: 2 for a source's pretraining run, 1 for a
        run finetuned from a source trained here, 0 otherwise. Other runs wait for the first
        two, the study's longest chain; without priorities the scheduler may leave them to
        the end (the scale model's cross-source runs then started 160 s after their sources
        were trained)."""
        if run in self.pretraining_runs():
            return 2
        return 1 if self.pretraining_run(run.source) is not None else 0

    def source_checkpoint(self, source: str) -> str:
        """The label of the pretraining run's checkpoint that becomes the source's weights:
        its analysed checkpoint (config ``analysed_checkpoint``)."""
        return self._analysed_label(self.pretraining_run(source))

    # --- runs -------------------------------------------------------------------------

    def runs(self) -> list[Run]:
        """Every analysed run: the finetune_runs blocks (variant 'default') and the dynamics runs."""
        runs = {
            Run(source, dataset, task)
            for block in self.config["finetune_runs"]
            for source in block["sources"]
            for dataset in block["datasets"]
            for task in block["tasks"]
        }
        return sorted(runs | set(self.dynamics_runs()))

    def dynamics_runs(self) -> list[Run]:
        """Runs analysed at every epoch (Section 4.4), with robustness."""
        return sorted(
            Run(entry["source"], entry["dataset"], entry["task"], variant)
            for entry in self.config["dynamics"]
            for variant in entry["variants"]
        )

    def training_runs(self) -> list[Run]:
        """Every run the workflow trains: the analysed runs and the sources' pretraining runs
        (a pretraining run that is also analysed is trained once)."""
        return sorted(set(self.runs()) | self.pretraining_runs())

    def is_dynamics(self, run: Run) -> bool:
        return run in set(self.dynamics_runs())

    def is_monitor_only(self, run: Run) -> bool:
        """Whether a run's metrics come from the forgetting monitor alone (forgetting at
        every epoch's end, no STIR job): the hyperparameter variants of the dynamics runs
        under config ``variant_metrics: monitor``. Figs. 6 and 15 and their claims read
        only the std of forgetting, which needs the source's inversions only."""
        return self.config["variant_metrics"] == "monitor" and run.variant != DEFAULT_VARIANT and self.is_dynamics(run)

    def variant_groups(self) -> dict[tuple[str, str, str], list[str]]:
        """(source, dataset, task) of the dynamics settings with more than one variant (Figs. 6, 15)."""
        groups: dict[tuple[str, str, str], list[str]] = {}
        for run in self.dynamics_runs():
            groups.setdefault((run.source, run.dataset, run.task), []).append(run.variant)
        return {setting: variants for setting, variants in sorted(groups.items()) if len(variants) > 1}

    # --- checkpoints ------------------------------------------------------------------

    @property
    def analysed_checkpoint(self) -> str:
        """'best' (highest test accuracy, the authors' scripts) or 'last'."""
        return self.config["analysed_checkpoint"]

    def epochs(self, run: Run) -> int:
        return int(self.training(run)["epochs"])

    def _analysed_label(self, run: Run) -> str:
        return BEST_LABEL if self.analysed_checkpoint == BEST else checkpoint_label(self.epochs(run))

    def analysed_checkpoints(self, run: Run) -> list[str]:
        """Labels of the checkpoints whose STIR is computed: every epoch of a dynamics run
        (its analysed checkpoint is one of them), the analysed checkpoint otherwise."""
        if self.is_dynamics(run):
            return [checkpoint_label(epoch) for epoch in range(1, self.epochs(run) + 1)]
        return [self._analysed_label(run)]

    def kept_checkpoints(self, run: Run) -> list[str]:
        """Labels of the checkpoints a training run publishes: those analysed, and the
        source checkpoint when the run pretrains a source."""
        labels = set(self.analysed_checkpoints(run)) if run in set(self.runs()) else set()
        if run in self.pretraining_runs():
            labels.add(self._analysed_label(run))
        return sorted(labels)

    def checkpoint_epochs(self, run: Run) -> list[int]:
        """Epochs whose checkpoints the training job writes (the best one is kept apart)."""
        return sorted(int(label.removeprefix("epoch_")) for label in self.kept_checkpoints(run) if label != BEST_LABEL)

    def is_monitored(self, run: Run) -> bool:
        """Whether the run measures its forgetting while it trains (config ``monitor``)."""
        return self.config["monitor"]["enabled"] and self.is_dynamics(run)

    def monitor_schedule(self) -> dict[str, Any]:
        """:class:`~finetune_invariance.study.training.MonitorSchedule` keywords."""
        return {key: self.config["monitor"][key] for key in ("every_steps", "until_epoch")}

    # --- STIR -------------------------------------------------------------------------

    @property
    def seeds(self) -> list[int]:
        return list(self.config["stir"]["seeds"])

    def pair_jobs(self) -> list[PairJob]:
        """Every STIR job: each analysed checkpoint of each run, for each seed (none for a
        run measured by the monitor alone)."""
        return [
            PairJob(run, label, seed)
            for run in self.runs()
            if not self.is_monitor_only(run)
            for label in self.analysed_checkpoints(run)
            for seed in self.seeds
        ]

    def pretrained_inversions(self) -> list[PretrainedInversion]:
        """Every source inverted on every dataset it is finetuned on (and the controls'
        source on their dataset), once per seed: the inversions serve every task, variant
        and checkpoint of those runs, and the controls built from the source."""
        pairs = {(run.source, run.dataset) for run in self.runs()}
        if self.controls_enabled:
            pairs.add((self.controls_source, self.controls_dataset))
        return [PretrainedInversion(source, dataset, seed) for source, dataset in sorted(pairs) for seed in self.seeds]

    # --- planted-effect controls ------------------------------------------------------

    @property
    def controls_enabled(self) -> bool:
        """Config ``controls.enabled``, with a source to build the controls from: without
        ``controls.source``, the one that plays ImageNet must be among the sources (a
        design without it has neither the controls nor the claims about that source)."""
        return self.config["controls"]["enabled"] and self.controls_source in self.config["sources"]

    @property
    def controls_source(self) -> str:
        """The source whose model the control pairs are built from (config ``controls.source``,
        by default the one that plays ImageNet)."""
        return self.config["controls"]["source"] or self.config["imagenet_source"]

    @property
    def controls_dataset(self) -> str:
        """The dataset whose test images the controls are measured on (config
        ``controls.dataset``, by default the first dynamics run's)."""
        dataset = self.config["controls"]["dataset"]
        if dataset is None:
            dataset = self.config["dynamics"][0]["dataset"] if self.config["dynamics"] else self.runs()[0].dataset
        return dataset

    def robustness_control_run(self) -> Run | None:
        """The dynamics run whose layer metrics carry the planted robustness control: the
        first default-variant one (None without one)."""
        runs = [run for run in self.dynamics_runs() if run.variant == DEFAULT_VARIANT]
        return runs[0] if runs else None

    # --- settings the jobs receive ----------------------------------------------------

    def training(self, run: Run) -> dict[str, Any]:
        """The run's training hyperparameters, as
        :class:`~finetune_invariance.study.training.TrainConfig` keywords: ``finetune``,
        overridden by the settings of the run's source (``sources.<name>.finetune``: the
        authors tie weight decay and warm-up to the source), overridden by its variant's."""
        settings = {
            **self.config["finetune"],
            **self.config["sources"][run.source].get("finetune", {}),
            **self.config["variants"][run.variant],
        }
        if isinstance(settings.get("augment"), bool):  # the old spelling of the augmentation
            settings["augment"] = "crop_flip" if settings["augment"] else "none"
        return {key: settings[key] for key in TRAINING_KEYS if key in settings} | {
            "image_size": self.source_image_size(run.source)
        }

    def model(self, weights: str, sha256: str | None = None, source: str | None = None) -> dict[str, Any]:
        """A :class:`~finetune_invariance.study.models.ModelSpec` as keywords: the model of
        ``source`` (:meth:`model_entry`; None: the top-level ``model``). Keys at their
        ModelSpec default are left out, so a config without them gives the jobs the
        parameters it always gave."""
        model = self.model_entry(source)
        spec = {
            "name": model["name"],
            "overrides": dict(model.get("overrides", {})),
            "weights": weights,
            "head_init": model["head_init"],
        }
        spec |= {key: list(model[key]) for key in ("mean", "std") if key in model}
        spec |= {} if model.get("register_tokens", True) else {"register_tokens": False}
        return spec | ({"sha256": sha256} if sha256 is not None else {})

    def source_model(self, source: str) -> dict[str, Any]:
        """The ModelSpec keywords of a source's starting weights (with the checksum of a
        'url:' or 'file:' weights file when the config pins one)."""
        entry = self.config["sources"][source]
        weights = entry["weights"]
        if weights.startswith("file:") and not Path(weights[len("file:") :]).is_absolute():
            weights = f"file:{self.workflow_dir / weights[len('file:') :]}"  # relative to the workflow's folder
        return self.model(weights, entry.get("sha256"), source)

    @property
    def image_size(self) -> int:
        """The input size of the top-level ``model``."""
        return model_image_size(self.config["model"])

    def source_image_size(self, source: str) -> int:
        """The input size of the model of ``source`` and of every run from it."""
        return model_image_size(self.model_entry(source))

    def data(self, dataset: str) -> dict[str, Any]:
        """Where ``dataset`` is read: :func:`~finetune_invariance.study.data.get_dataset` keywords
        (a folder dataset: its root, relative to the workflow's folder, and native size)."""
        entry = self.config["datasets"][dataset]
        if entry["kind"] == "folder":
            root = folder_root(entry["root"], self.workflow_dir)
            return {"root": str(root), "download": False, "folder_size": entry["image_size"]}
        return {"root": self.config["data_root"], "download": self.config["download"]}

    def facts(self, dataset: str) -> DatasetFacts:
        """What the study knows about ``dataset`` (:func:`.catalog.configured_facts`), found
        once per design (a folder dataset's folder is scanned on the first call only)."""
        if dataset not in self._facts:
            self._facts[dataset] = configured_facts(dataset, self.config["datasets"][dataset], self.workflow_dir)
        return self._facts[dataset]

    def num_classes(self, run: Run) -> int | None:
        """The classes of a classification run's dataset (None for reconstruction)."""
        return self.facts(run.dataset).num_classes if run.task == CLASSIFICATION else None

    def generated_sizes(self, dataset: str) -> dict[str, int]:
        entry = self.config["datasets"][dataset]
        return {key: entry[key] for key in ("n_train", "n_test") if key in entry}

    def is_generated(self, dataset: str) -> bool:
        return self.config["datasets"][dataset]["kind"] == "generated"

    def is_folder(self, dataset: str) -> bool:
        return self.config["datasets"][dataset]["kind"] == "folder"

    def corrupted_kind(self, dataset: str) -> str | None:
        """'published' (CIFAR-10-C / CIFAR-100-C files), 'generated', or None."""
        return self.config["datasets"][dataset].get("corrupted")

    @property
    def stir(self) -> dict[str, Any]:
        return dict(self.config["stir"])

    @property
    def robustness(self) -> dict[str, Any]:
        return dict(self.config["robustness"])

    @property
    def results(self) -> Path:
        return self.layout.results
