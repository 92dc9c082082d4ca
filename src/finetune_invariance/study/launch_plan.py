"""The launch plan of a configuration: what a run will do, said before anything runs.

    python -m finetune_invariance.study.launch_plan --configfile config/paper.yaml
    python -m finetune_invariance.study.launch_plan --configfile config/paper.yaml --profile profiles/slurm

prints, as Markdown:

- **jobs** per rule and how many ask for a GPU, from the workflow's own dry-run in an empty
  folder (the whole design; data already under an absolute ``data_root`` is not planned
  again), with the runtime each job asks the scheduler for. With ``--profile`` the dry-run
  uses that profile, so the SLURM profile's unfilled placeholders stop the plan, naming
  the variable to set;
- **GPU-hours** per GPU rule on every device with measured costs
  (:mod:`.measured_costs`, which names the device and the date), the longest job against
  the runtime it asks for, and what the estimate leaves out;
- **disk** per folder: the peak during the run and what is left at its end;
- **downloads**: what is fetched from where, and the **files an offline cluster must
  provide** instead, where they must be.

Sizes of the models and their files are computed from each source's model (built on the
meta device); download sizes are the publishers' (approximate). A model other than the
measured one, at the measured input size, is estimated from the measurement by the ratio
of forward MACs (counted on the meta device), and for inversions also of the work of
inverting every layer (:func:`work_ratios`); the plan says so.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .catalog import dataset_facts
from .cifar_c import ARCHIVES, cifar_c_dir
from .config import ConfigError, check_config, load_config_file, n_test_images
from .control_plan import INVERTED_MODELS, MODEL_CONTROLS, PLANTED_EPOCHS
from .design import StudyDesign
from .measured_costs import MEASUREMENTS, Measurement
from .results_folder import check_results_folder, stamp_path
from .vocabulary import CLASSIFICATION, TASKS, Run

#: The repository holding the workflow (an editable install of this package lives in it).
REPOSITORY = Path(__file__).resolve().parents[3]

#: Approximate sizes in bytes (archive as downloaded, files once extracted), from the
#: publishers' pages; torchvision keeps a dataset's archive beside its files, the CIFAR-C
#: download deletes its archive once extracted.
DOWNLOAD_BYTES: dict[str, tuple[int, int]] = {
    "cifar10": (170_498_071, 186_000_000),
    "cifar100": (169_001_437, 185_000_000),
    "eurosat": (94_000_000, 100_000_000),
    "oxford_pets": (811_092_049, 850_000_000),
    **{folder: (2_920_000_000, 2_918_500_000) for folder in ("CIFAR-10-C", "CIFAR-100-C")},
}
_FLOAT32 = 4  # bytes of the inversions' images, targets and losses
#: Upper bounds per row of the small parquet tables and per job of logs and timings.
_TABLE_ROW_BYTES = 64
_JOB_LOG_BYTES = 20_000
_FIGURE_BYTES = 250_000  # a PNG and its PDF


class LaunchPlanError(RuntimeError):
    """The plan cannot be made: the workflow's dry-run failed, or its output is not understood."""


# --- jobs, from the workflow's dry-run -----------------------------------------------


@dataclass(frozen=True)
class RuleJobs:
    """One rule's jobs in the dry-run: how many, how many ask for a GPU, the most runtime one asks."""

    rule: str
    jobs: int
    gpu_jobs: int
    runtime_min: int | None


_JOB_HEADER = re.compile(r"^(?:local)?rule (\w+):$", re.MULTILINE)
_JOB_STATS = re.compile(r"Job stats:\njob\s+count\n[- ]+\n((?:\w+\s+\d+\n)+)")


def parse_dry_run(output: str) -> dict[str, RuleJobs]:
    """Jobs per rule from the text of ``snakemake --dry-run`` (each job's block and its
    ``resources:`` line), checked against the 'Job stats' table it ends with."""
    parts = _JOB_HEADER.split(output)
    jobs: Counter = Counter()
    gpus: Counter = Counter()
    runtimes: dict[str, int] = {}
    for rule, body in zip(parts[1::2], parts[2::2]):
        jobs[rule] += 1
        resources = re.search(r"^\s+resources: (.*)$", body, re.MULTILINE)
        values = dict(re.findall(r"(\w+)=([^,]+)", resources.group(1))) if resources else {}
        gpus[rule] += int(values.get("gpu", 0)) > 0
        if "runtime" in values:
            runtimes[rule] = max(runtimes.get(rule, 0), int(values["runtime"]))
    stats = _JOB_STATS.search(output)
    if stats is None:
        raise LaunchPlanError(f"the dry-run printed no 'Job stats' table:\n{output[-3000:]}")
    counted = {rule: int(n) for rule, n in re.findall(r"(\w+)\s+(\d+)", stats.group(1)) if rule != "total"}
    if counted != dict(jobs):
        raise LaunchPlanError(f"the dry-run's job blocks {dict(jobs)} disagree with its Job stats {counted}")
    return {rule: RuleJobs(rule, n, gpus[rule], runtimes.get(rule)) for rule, n in jobs.items()}


def planned_jobs(config_files: Sequence[Path], snakefile: Path, profile: Path | None = None) -> dict[str, RuleJobs]:
    """Jobs per rule of the whole design: ``snakemake --dry-run`` in an empty folder."""
    with tempfile.TemporaryDirectory(prefix="launch_plan_") as empty:
        command = [sys.executable, "-m", "snakemake", "--dry-run", "--snakefile", str(snakefile), "--directory", empty]
        command += ["--profile", str(profile)] if profile else []
        command += ["--configfile", *map(str, config_files)]
        result = subprocess.run(command, capture_output=True, text=True, cwd=empty)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        reason = re.search(r"(?:WorkflowError|Error)[^\n]*\n(.*?)(?:\n  File |\Z)", output, re.DOTALL)
        raise LaunchPlanError(
            f"the workflow's dry-run stops:\n{(reason.group(1) if reason else output[-3000:]).strip()}"
        )
    return parse_dry_run(output)


# --- GPU work and GPU-hours ----------------------------------------------------------


def _train_images(study: StudyDesign, dataset: str) -> int:
    return int(study.config["datasets"][dataset].get("n_train", study.facts(dataset).train_size))


class Work(Counter):
    """One GPU job's work: amounts per unit of :mod:`.measured_costs`, done by the model of
    the source ``model`` names (the costs of another model are scaled, :func:`work_ratios`)."""

    def __init__(self, amounts: dict[str, float], model: str):
        super().__init__(amounts)
        self.model = model


def _training_precision(training: dict[str, Any]) -> str:
    if "precision" in training:
        return training["precision"]
    return "bf16" if training.get("bf16", True) else "fp32"  # the older spelling


def gpu_work(study: StudyDesign, facts: dict[str, dict[str, Any]]) -> dict[str, list[Work]]:
    """Each GPU job's work in the units of :mod:`.measured_costs`, by rule (``facts``:
    :func:`study_model_facts`).

    The forgetting monitor's measurements during training, data loading and start-up are
    not counted.
    """
    stir, robustness = study.stir, study.robustness
    n, iterations = stir["n_images"], stir["iterations"]
    inversion_unit = f"inversion_image_step_{stir['precision']}"
    work: dict[str, list[Work]] = {
        "finetune": [],
        "invert_pretrained": [],
        "stir": [],
        "control_stir": [],
        "control_robustness": [],
        "robust_accuracy": [],
    }
    for run in study.training_runs():
        epochs = study.epochs(run)
        unit = f"training_image_{_training_precision(study.training(run))}"
        amounts = {
            unit: epochs * _train_images(study, run.dataset),
            "evaluated_image": epochs * n_test_images(study.config, run.dataset, facts=study.facts(run.dataset)),
        }
        work["finetune"].append(Work(amounts, run.source))
    work["invert_pretrained"] = [
        Work({inversion_unit: iterations * n}, job.source) for job in study.pretrained_inversions()
    ]

    def pair_forwards(source: str) -> int:
        """X and every layer's inversions through both models in both directions."""
        return 2 * 2 * (facts[source]["layers"] + 1) * n

    # A STIR job inverts the checkpoint, then compares it with its source.
    work["stir"] = [
        Work({inversion_unit: iterations * n, "evaluated_image": pair_forwards(job.run.source)}, job.run.source)
        for job in study.pair_jobs()
    ]
    severities = 5 if robustness["sampling"] == "per_severity" else 5 * len(robustness["corruptions"])
    per_epoch = robustness["n_images"] * (severities + 1)  # and the clean sample
    work["robust_accuracy"] = [
        Work({"evaluated_image": study.epochs(run) * per_epoch}, run.source) for run in study.dynamics_runs()
    ]
    if study.controls_enabled:
        # A control job (one per seed) inverts each model of its pairs that is not the source
        # once (controls.INVERTED_MODELS) and compares every pair as a STIR job does.
        source = study.controls_source
        work["control_stir"] = [
            Work(
                {
                    inversion_unit: INVERTED_MODELS * iterations * n,
                    "evaluated_image": len(MODEL_CONTROLS) * pair_forwards(source),
                },
                source,
            )
            for _ in study.seeds
        ]
        run = study.robustness_control_run()
        if run is not None:  # the planted series: the monitor's forwards and the robustness sample per model
            monitor = len(study.seeds) * (facts[run.source]["layers"] + 2) * n
            work["control_robustness"] = [Work({"evaluated_image": PLANTED_EPOCHS * (monitor + per_epoch)}, run.source)]
    return work


@dataclass(frozen=True)
class RuleHours:
    rule: str
    hours: float | None  # None: a unit of work without a cost
    longest_job_hours: float | None
    missing: tuple[str, ...]  # units without a measured or derived cost


def gpu_hours(
    work: dict[str, list[Work]], measurement: Measurement, ratios: dict[str, dict[str, float]] | None = None
) -> list[RuleHours]:
    """Hours per rule: each job's work at the measured costs, scaled by ``ratios`` of its
    model (:func:`work_ratios`; None: every job's model is the measured one)."""
    rows = []
    for rule, jobs in work.items():
        units = sorted({unit for job in jobs for unit in job})
        missing = tuple(unit for unit in units if measurement.cost(unit) is None)
        if missing or not jobs:
            rows.append(RuleHours(rule, None if missing else 0.0, None if missing else 0.0, missing))
            continue
        seconds = [
            sum(
                amount * measurement.cost(unit) * (ratios[job.model][_ratio_kind(unit)] if ratios else 1.0)
                for unit, amount in job.items()
            )
            for job in jobs
        ]
        rows.append(RuleHours(rule, sum(seconds) / 3600, max(seconds) / 3600, ()))
    return rows


def _ratio_kind(unit: str) -> str:
    return "inversion" if unit.startswith("inversion_") else "forward"


def work_ratios(facts: dict[str, Any], measured: dict[str, Any]) -> dict[str, float]:
    """A model's work per unit relative to the measured model's (both :func:`model_facts`):
    'forward', the ratio of forward MACs per image (a training step and an evaluation are a
    fixed multiple of the forward pass); 'inversion', of the work of one inversion step of
    every layer, each layer's forward and backward reaching its depth: for D uniform blocks,
    forward MACs x (D + 3) / 2 (layers 0..D-1 need 1..D blocks, the pooled layer D)."""
    forward = facts["forward_macs"] / measured["forward_macs"]
    depth, measured_depth = facts["layers"] - 1, measured["layers"] - 1
    return {"forward": forward, "inversion": forward * (depth + 3) / (measured_depth + 3)}


# --- the model's sizes -----------------------------------------------------------------


def model_facts(model: dict[str, Any], classes: Iterable[int] = (1,)) -> dict[str, Any]:
    """Layers (blocks + the pooled output), trainable parameters, file bytes and forward MACs
    per image of a config model block: the backbone, and a checkpoint per (task, classes),
    built on the meta device."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .design import model_image_size
    from .models import ModelSpec, build_model

    spec = ModelSpec(model["name"], dict(model.get("overrides", {})), "scratch")
    size = model_image_size(model)

    def state_bytes(module) -> int:
        return sum(t.numel() * t.element_size() for t in module.state_dict().values())

    with torch.device("meta"):
        built = {(CLASSIFICATION, k): build_model(spec, CLASSIFICATION, k) for k in {*classes, 1}}
        built |= {(task, None): build_model(spec, task) for task in TASKS if task != CLASSIFICATION}
        any_model = next(iter(built.values()))
        with FlopCounterMode(display=False) as counter:
            any_model.backbone(torch.empty(1, 3, size, size))
    return {
        "name": model["name"],
        "image_size": size,
        "layers": len(any_model.backbone.blocks) + 1,
        "forward_macs": counter.get_total_flops() / 2,
        "backbone_bytes": state_bytes(any_model.backbone),
        "checkpoint_bytes": {key: state_bytes(m) for key, m in built.items()},
        "trainable_bytes": {
            key: sum(p.numel() * p.element_size() for p in m.parameters() if p.requires_grad)
            for key, m in built.items()
        },
    }


def study_model_facts(study: StudyDesign) -> dict[str, dict[str, Any]]:
    """:func:`model_facts` of each source's model (:meth:`.design.StudyDesign.model_entry`),
    with a checkpoint for every dataset's classes; sources of one model share one entry."""
    classes = {study.facts(name).num_classes for name in study.config["datasets"]}
    built: dict[str, dict[str, Any]] = {}
    facts = {}
    for source in study.config["sources"]:
        entry = study.model_entry(source)
        key = repr(sorted(entry.items()))
        if key not in built:
            built[key] = model_facts(entry, classes)
        facts[source] = built[key]
    return facts


def _model_key(study: StudyDesign, run: Run) -> tuple[str, int | None]:
    return (run.task, study.num_classes(run))


# --- disk --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FolderUse:
    folder: str
    peak: int
    final: int
    what: str


def disk_use(study: StudyDesign, facts: dict[str, dict[str, Any]]) -> list[FolderUse]:
    """Bytes per folder at the peak of the run and at its end (``work/`` may be deleted then)
    (``facts``: :func:`study_model_facts`)."""
    config, layout = study.config, study.layout
    results, data_root = layout.results, layout.data_root
    runs = study.training_runs()

    def checkpoint(run: Run) -> int:
        return facts[run.source]["checkpoint_bytes"][_model_key(study, run)]

    published = sum(len(study.kept_checkpoints(run)) * checkpoint(run) for run in runs)
    keep_best = study.analysed_checkpoint == "best"
    optimizer_copies = {run: 2 if study.training(run)["optimizer"] == "adam" else 1 for run in runs}
    work = sum(
        (len(study.checkpoint_epochs(run)) + keep_best + 1) * checkpoint(run)
        + optimizer_copies[run] * facts[run.source]["trainable_bytes"][_model_key(study, run)]
        for run in runs
    )
    n = study.stir["n_images"]

    def inversion_file(source: str) -> int:
        layers, side = facts[source]["layers"], facts[source]["image_size"]
        return ((layers + 1) * n * 3 * side * side + layers * n) * _FLOAT32

    inversions = sum(inversion_file(job.source) for job in study.pretrained_inversions())
    sources = sum(facts[source]["backbone_bytes"] for source in config["sources"])
    pair_rows = sum(2 * facts[job.run.source]["layers"] ** 2 for job in study.pair_jobs())
    robustness = config["robustness"]
    corrupted = sum(
        robustness["n_images"] * 6 * study.facts(d).image_size ** 2 * 3
        for d in {run.dataset for run in study.dynamics_runs()}
    )
    n_jobs = len(runs) + len(study.pretrained_inversions()) + len(study.pair_jobs()) + len(study.dynamics_runs()) + 40
    n_figures = len(study.runs()) + 3 * len(study.dynamics_runs()) + len(study.variant_groups()) + 4
    small = pair_rows * _TABLE_ROW_BYTES * 3 + n_jobs * _JOB_LOG_BYTES + n_figures * _FIGURE_BYTES
    uses = [
        FolderUse(
            f"{results}/work", work, work, "each run's resume state and checkpoints (delete once the run is finished)"
        ),
        FolderUse(
            f"{results}/finetune", published, published, "published checkpoints: the analysed ones and the sources'"
        ),
        FolderUse(
            f"{results}/inversions",
            inversions,
            inversions,
            f"{len(study.pretrained_inversions())} files of every layer of a source inverted for n images",
        ),
        FolderUse(f"{results}/sources", sources, sources, "each source's starting weights"),
        FolderUse(f"{results}/data/corrupted", corrupted, corrupted, "the sampled corrupted test inputs"),
        FolderUse(
            f"{results}/{{stir,robustness,tables,figures,logs,benchmarks}}",
            small,
            small,
            "tables, figures, logs (an upper bound)",
        ),
    ]
    for name, (archive, extracted) in _downloaded_data(study).items():
        if name in _CIFAR_C_FOLDERS:  # the archive is deleted once extracted
            uses.append(
                FolderUse(f"{data_root}/{name}", archive + extracted, extracted, "published corrupted test sets")
            )
        else:  # torchvision keeps the archive beside the files
            folder = dataset_facts(name).expected_path(data_root, "train").relative_to(data_root).parts[0]
            what = f"{name}, and its download archive in {data_root}"
            uses.append(FolderUse(f"{data_root}/{folder}", archive + extracted, archive + extracted, what))
    return uses


_CIFAR_C_FOLDERS = {archive.folder for archive in ARCHIVES.values()}


# --- downloads and what an offline cluster must provide ------------------------------


def _datasets_read(study: StudyDesign) -> list[str]:
    """The downloadable datasets the design reads (not generated, not your own folders)."""
    return sorted(
        {run.dataset for run in study.training_runs()}
        - {d for d in study.config["datasets"] if study.is_generated(d) or study.is_folder(d)}
    )


def _published_corrupted(study: StudyDesign) -> list[str]:
    return sorted({run.dataset for run in study.dynamics_runs() if study.corrupted_kind(run.dataset) == "published"})


def _downloaded_data(study: StudyDesign) -> dict[str, tuple[int, int]]:
    """Sizes of the downloadable data the design reads, by dataset name or CIFAR-C folder."""
    sizes = {d: DOWNLOAD_BYTES[d] for d in _datasets_read(study) if d in DOWNLOAD_BYTES}
    return sizes | {ARCHIVES[d].folder: DOWNLOAD_BYTES[ARCHIVES[d].folder] for d in _published_corrupted(study)}


@dataclass(frozen=True)
class Download:
    what: str
    source: str  # where it comes from
    destination: str  # where it ends up
    bytes: int | None
    offline: str  # what an offline cluster must provide instead


def downloads(study: StudyDesign, facts: dict[str, dict[str, Any]]) -> list[Download]:
    """What the design downloads and what an offline cluster must provide (``facts``:
    :func:`study_model_facts`)."""
    data_root = study.layout.data_root
    sizes = _downloaded_data(study)
    rows = []
    for dataset in _datasets_read(study):
        known = dataset_facts(dataset)
        urls = re.findall(r"https?://[^\s,]+", known.how_to_get) or [known.how_to_get]
        expected = sorted({str(known.expected_path(data_root, split)) for split in ("train", "test")})
        rows.append(
            Download(
                dataset,
                "torchvision: " + ", ".join(urls),
                str(data_root),
                sizes.get(dataset, (None,))[0],
                " and ".join(expected),
            )
        )
    corruptions = study.robustness["corruptions"]
    for dataset in _published_corrupted(study):
        archive = ARCHIVES[dataset]
        folder = cifar_c_dir(data_root, dataset)
        files = ", ".join(f"{name}.npy" for name in ["labels", *corruptions])
        rows.append(
            Download(
                archive.folder,
                f"Zenodo: {archive.url} (md5 {archive.md5})",
                str(folder),
                sizes[archive.folder][0],
                f"{folder}/ with {files}",
            )
        )
    for source, entry in study.config["sources"].items():
        kind, _, location = entry["weights"].partition(":")
        if kind == "timm":
            import timm

            name = f"{study.model_entry(source)['name']}.{location}"
            hub = timm.models.get_pretrained_cfg(name).hf_hub_id or name
            rows.append(
                Download(
                    f"weights of source '{source}'",
                    f"Hugging Face hub: {hub}",
                    "the Hugging Face cache (HF_HOME)",
                    facts[source]["backbone_bytes"],
                    f"{hub} in the Hugging Face cache with HF_HUB_OFFLINE=1, or the file as weights 'file:<path>'",
                )
            )
        elif kind == "url":
            import torch.hub

            cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(location).name
            rows.append(
                Download(
                    f"weights of source '{source}'",
                    location,
                    str(cached),
                    facts[source]["backbone_bytes"],
                    f"{cached} (torch's hub cache, TORCH_HOME), or the file anywhere as weights 'file:<path>'",
                )
            )
        elif kind == "file":
            rows.append(
                Download(f"weights of source '{source}'", "a local file (nothing downloaded)", location, None, location)
            )
    return rows


# --- the plan, printed --------------------------------------------------------------------


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} B"


def _hours(h: float | None) -> str:
    return "?" if h is None else f"{h:,.1f}"


def render(
    config: dict[str, Any],
    config_files: Sequence[Path],
    jobs: dict[str, RuleJobs],
    schema: Path,
    measurements: Iterable[Measurement] = MEASUREMENTS,
    workflow_dir: Path = REPOSITORY,
) -> str:
    """The launch plan of a validated config as Markdown (``schema``: the config schema)."""
    study = StudyDesign(config, workflow_dir)
    facts = study_model_facts(study)
    lines = [f"# Launch plan: {' + '.join(map(str, config_files))}", ""]
    try:
        check_results_folder(config, config_files, schema)
        stamp = "this configuration's" if stamp_path(config).is_file() else "not written yet"
    except ConfigError as refusal:
        stamp = f"REFUSED: {refusal}"
    lines += [
        f"Results folder `{study.results}` (stamp: {stamp}); data root `{study.layout.data_root}`, "
        f"download {'on' if config['download'] else 'off'}, device `{config['device']}`.",
        "",
        "## Jobs",
        "",
    ]
    total, gpu_total = sum(r.jobs for r in jobs.values()), sum(r.gpu_jobs for r in jobs.values())
    lines += [
        f"From the workflow's dry-run in an empty folder: {total} jobs, {gpu_total} of them ask for a GPU.",
        "",
        "| rule | jobs | GPU jobs | runtime asked per job (min) |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {r.rule} | {r.jobs} | {r.gpu_jobs} | {r.runtime_min or ''} |" for _, r in sorted(jobs.items())]
    work = gpu_work(study, facts)
    lines += ["", "## GPU-hours", ""]
    for name, rule_jobs in work.items():
        planned = jobs[name].jobs if name in jobs else 0
        if planned != len(rule_jobs):
            raise LaunchPlanError(
                f"the workflow plans {planned} '{name}' jobs, the work model {len(rule_jobs)}: "
                "launch_plan.gpu_work is out of date with the rules"
            )
    unmodelled = [f"{r.rule} ({r.gpu_jobs} GPU jobs)" for r in jobs.values() if r.gpu_jobs and r.rule not in work]
    for measurement in measurements:
        lines += [f"### {measurement.device} (measured {measurement.date})", "", f"Source: {measurement.source}."]
        ratios, scaled, reason = _model_ratios(study, facts, work, measurement)
        if reason:
            lines += [
                "",
                f"Not estimated: these costs were {reason}; measure with `python benchmarks/paper_cost.py --device cuda`.",
                "",
            ]
            continue
        rows = gpu_hours(work, measurement, ratios)
        lines += [
            "",
            "| rule | jobs | GPU-hours | longest job (h) | runtime asked (h) |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in rows:
            asked = jobs[row.rule].runtime_min if row.rule in jobs else None
            flag = (
                " (longer than asked)" if asked and row.longest_job_hours and row.longest_job_hours * 60 > asked else ""
            )
            lines.append(
                f"| {row.rule} | {len(work[row.rule])} | {_hours(row.hours)} | {_hours(row.longest_job_hours)}{flag} | "
                f"{asked / 60 if asked else ''} |"
            )
        known = [row.hours for row in rows if row.hours is not None]
        lines.append(f"| **total** | {sum(len(w) for w in work.values())} | **{_hours(sum(known))}** | | |")
        missing = sorted({unit for row in rows for unit in row.missing})
        notes = [f"no cost of {', '.join(missing)} on this device: those rules are not counted"] if missing else []
        notes += [f"not counted, no work model in launch_plan.gpu_work: {', '.join(unmodelled)}"] if unmodelled else []
        notes += [f"{unit}: {how}" for unit, (_, how) in measurement.derived.items()]
        notes += [
            f"source '{source}' ({facts[source]['name']}, depth {facts[source]['layers'] - 1}, "
            f"{facts[source]['forward_macs'] / 1e9:.1f} GMAC per image at {facts[source]['image_size']} px): estimated, "
            f"not measured: the measured costs x {ratios[source]['forward']:.2f} (forward MACs) and x "
            f"{ratios[source]['inversion']:.2f} for inversions (launch_plan.work_ratios), at the measured GPU efficiency"
            for source in scaled
        ]
        notes += [
            f"training measured at batch {measurement.batch_size}, input pipeline excluded; the forgetting monitor, "
            "job start-up and model loading are not counted"
        ]
        lines += ["", *(f"- {note}" for note in notes), ""]
    uses = disk_use(study, facts)
    lines += [
        "## Disk",
        "",
        "| folder | peak | at the end | what |",
        "|---|---:|---:|---|",
        *(f"| `{u.folder}` | {_size(u.peak)} | {_size(u.final)} | {u.what} |" for u in uses),
        f"| **total** | **{_size(sum(u.peak for u in uses))}** | **{_size(sum(u.final for u in uses))}** | "
        f"{_size(sum(u.final for u in uses) - uses[0].final)} once `work/` is deleted |",
        "",
        "## Downloads",
        "",
    ]
    rows = downloads(study, facts)
    if not rows:
        lines += ["Nothing: every dataset is generated and no source has downloaded weights.", ""]
    else:
        fetched = (
            "fetched when a job first needs it"
            if config["download"]
            else "NOT fetched: the config has 'download: false'"
        )
        lines += [
            f"Data {fetched}; weights are fetched by the source_model job.",
            "",
            "| what | from | to | size |",
            "|---|---|---|---:|",
            *(f"| {d.what} | {d.source} | `{d.destination}` | {_size(d.bytes)} |" for d in rows),
            "",
            "### On a cluster without internet, provide",
            "",
            *(f"- {d.what}: `{d.offline}`" for d in rows),
            "",
        ]
    return "\n".join(lines)


def _model_ratios(
    study: StudyDesign, facts: dict[str, dict[str, Any]], work: dict[str, list[Work]], measurement: Measurement
) -> tuple[dict[str, dict[str, float]], list[str], str | None]:
    """Each working source's :func:`work_ratios` to the measured model, the sources whose
    model is not the measured one (estimated by scaling), and why the costs do not apply
    (a model at another input size than the measured one) or None."""
    measured = None
    ratios, scaled = {}, []
    for source in sorted({job.model for jobs in work.values() for job in jobs}):
        reason = measurement.applies_to(study.model_entry(source), facts[source]["image_size"])
        if reason is None:
            ratios[source] = {"forward": 1.0, "inversion": 1.0}
            continue
        if facts[source]["image_size"] != measurement.image_size:
            return {}, [], reason
        if measured is None:
            measured = model_facts(
                {"name": measurement.model, "overrides": measurement.overrides, "image_size": measurement.image_size}
            )
        ratios[source] = work_ratios(facts[source], measured)
        scaled.append(source)
    return ratios, scaled, None


def load_config(config_files: Sequence[Path], schema: Path) -> dict[str, Any]:
    """The configs merged as Snakemake merges ``--configfile``s, validated (defaults filled) and checked."""
    from snakemake.utils import update_config, validate

    config: dict[str, Any] = {}
    for path in config_files:
        update_config(config, load_config_file(path))
    validate(config, str(schema))
    check_config(config, workflow_dir=Path(schema).resolve().parents[2])  # the workflow's folder holds the schema
    return config


def plan(config_files: Sequence[Path], snakefile: Path, profile: Path | None = None) -> str:
    """The launch plan of ``config_files`` (merged as Snakemake merges them) as Markdown."""
    config_files = [Path(path).resolve() for path in config_files]
    schema = snakefile.parent / SCHEMA
    config = load_config(config_files, schema)
    jobs = planned_jobs(config_files, snakefile.resolve(), profile.resolve() if profile else None)
    return render(config, config_files, jobs, schema, workflow_dir=snakefile.resolve().parent)


def total_gpu_hours(config_files: Sequence[Path], snakefile: Path, measurement: Measurement) -> float | None:
    """The plan's total GPU-hours on ``measurement``'s device, without the dry-run (the
    work model alone); None where the costs do not apply or a unit has none."""
    config = load_config([Path(path).resolve() for path in config_files], snakefile.parent / SCHEMA)
    study = StudyDesign(config, snakefile.resolve().parent)
    facts = study_model_facts(study)
    work = gpu_work(study, facts)
    ratios, _, reason = _model_ratios(study, facts, work, measurement)
    hours = [row.hours for row in gpu_hours(work, measurement, ratios)] if reason is None else [None]
    return None if None in hours else sum(hours)


#: Where the config schema lies in the workflow's folder.
SCHEMA = Path("workflow/schemas/config.schema.yaml")

#: Marked blocks of a docs page that :func:`write_docs` fills: a plan, and a plan's total.
_PLAN_BLOCK = re.compile(r"(<!-- launch plan: (?P<files>[^>]+?) -->\n)(.*?)(<!-- end launch plan -->)", re.DOTALL)
_HOURS_BLOCK = re.compile(r"(<!-- gpu-hours: (?P<files>[^>]+?) -->)(.*?)(<!-- end gpu-hours -->)", re.DOTALL)


def portable(text: str, repository: Path) -> str:
    """A plan for a docs page: paths relative to the repository, torch's hub cache as
    ``$TORCH_HOME/hub``, and its headings two levels down."""
    import torch.hub

    text = text.replace(f"{Path(torch.hub.get_dir())}", "$TORCH_HOME/hub").replace(f"{repository.resolve()}/", "")
    return re.sub(r"(?m)^#", "###", text)


def write_docs(page: Path, snakefile: Path, measurement: Measurement = MEASUREMENTS[0]) -> None:
    """Fill the marked blocks of the Markdown ``page`` (``<!-- launch plan: FILES -->`` ...
    ``<!-- end launch plan -->`` with the plan of the config FILES, relative to the
    repository; ``<!-- gpu-hours: FILES -->`` ... ``<!-- end gpu-hours -->`` with their total
    GPU-hours on ``measurement``'s device)."""
    repository = snakefile.resolve().parent

    def files(match: re.Match) -> list[Path]:
        return [repository / name for name in match["files"].split()]

    text = page.read_text()
    text = _PLAN_BLOCK.sub(lambda m: m[1] + portable(plan(files(m), snakefile), repository).strip() + "\n" + m[4], text)
    text = _HOURS_BLOCK.sub(lambda m: m[1] + _hours(total_gpu_hours(files(m), snakefile, measurement)) + m[4], text)
    page.write_text(text)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--configfile",
        nargs="+",
        type=Path,
        help="config file(s), as for snakemake (default: the embedded config.yaml)",
    )
    parser.add_argument("--profile", type=Path, help="a Snakemake profile for the dry-run (e.g. profiles/slurm)")
    parser.add_argument("--snakefile", type=Path, default=REPOSITORY / "Snakefile")
    parser.add_argument(
        "--docs",
        type=Path,
        help="instead of printing a plan, fill the launch plans marked in this Markdown page (docs/your-models.md)",
    )
    args = parser.parse_args(argv)
    if not args.snakefile.is_file():
        parser.error(f"no Snakefile at {args.snakefile}; pass --snakefile")
    try:
        if args.docs:
            write_docs(args.docs, args.snakefile)
            return
        print(plan(args.configfile or [args.snakefile.parent / "config.yaml"], args.snakefile, args.profile))
    except (ConfigError, LaunchPlanError) as err:
        sys.exit(f"no launch plan: {err}")


if __name__ == "__main__":
    main()
