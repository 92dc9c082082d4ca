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

Sizes of the models and their files are computed from the config's model (built on the
meta device); download sizes are the publishers' (approximate).
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
from .control_plan import COMPRESSED, EXPANDED, IDENTICAL, MODEL_CONTROLS, REINITIALISED
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
#: A pretrained weights file: about the backbone's float32 state dict.
_FLOAT32 = 4
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


def _train_images(config: dict[str, Any], dataset: str) -> int:
    return int(config["datasets"][dataset].get("n_train", dataset_facts(dataset).train_size))


def _training_precision(training: dict[str, Any]) -> str:
    if "precision" in training:
        return training["precision"]
    return "bf16" if training.get("bf16", True) else "fp32"  # the older spelling


def gpu_work(study: StudyDesign) -> dict[str, list[Counter]]:
    """Each GPU job's work in the units of :mod:`.measured_costs`, by rule.

    The forgetting monitor's measurements during training, data loading and start-up are
    not counted.
    """
    config = study.config
    stir, robustness = study.stir, study.robustness
    n, iterations = stir["n_images"], stir["iterations"]
    inversion_unit = f"inversion_image_step_{stir['precision']}"
    layers = model_facts(config)["layers"]
    work: dict[str, list[Counter]] = {
        "finetune": [],
        "invert_pretrained": [],
        "stir": [],
        "control_stir": [],
        "robust_accuracy": [],
    }
    for run in study.training_runs():
        epochs = study.epochs(run)
        unit = f"training_image_{_training_precision(study.training(run))}"
        work["finetune"].append(
            Counter(
                {
                    unit: epochs * _train_images(config, run.dataset),
                    "evaluated_image": epochs * n_test_images(config, run.dataset),
                }
            )
        )
    work["invert_pretrained"] = [Counter({inversion_unit: iterations * n}) for _ in study.pretrained_inversions()]
    # A STIR job inverts the checkpoint, then passes X and every layer's inversions through
    # both models in both directions.
    pair_forwards = 2 * 2 * (layers + 1) * n
    work["stir"] = [
        Counter({inversion_unit: iterations * n, "evaluated_image": pair_forwards}) for _ in study.pair_jobs()
    ]
    if study.controls_enabled:
        # A control job inverts the sides of its pair that are not the source (one, or two for
        # compression and expansion) and compares them as a STIR job does.
        inverted_sides = {IDENTICAL: 1, REINITIALISED: 1, COMPRESSED: 2, EXPANDED: 2}
        work["control_stir"] = [
            Counter({inversion_unit: inverted_sides[control] * iterations * n, "evaluated_image": pair_forwards})
            for control in MODEL_CONTROLS
            for _ in study.seeds
        ]
    severities = 5 if robustness["sampling"] == "per_severity" else 5 * len(robustness["corruptions"])
    per_epoch = robustness["n_images"] * (severities + 1)  # and the clean sample
    work["robust_accuracy"] = [
        Counter({"evaluated_image": study.epochs(run) * per_epoch}) for run in study.dynamics_runs()
    ]
    return work


@dataclass(frozen=True)
class RuleHours:
    rule: str
    hours: float | None  # None: a unit of work without a cost
    longest_job_hours: float | None
    missing: tuple[str, ...]  # units without a measured or derived cost


def gpu_hours(work: dict[str, list[Counter]], measurement: Measurement) -> list[RuleHours]:
    rows = []
    for rule, jobs in work.items():
        units = sorted({unit for job in jobs for unit in job})
        missing = tuple(unit for unit in units if measurement.cost(unit) is None)
        if missing or not jobs:
            rows.append(RuleHours(rule, None if missing else 0.0, None if missing else 0.0, missing))
            continue
        seconds = [sum(amount * measurement.cost(unit) for unit, amount in job.items()) for job in jobs]
        rows.append(RuleHours(rule, sum(seconds) / 3600, max(seconds) / 3600, ()))
    return rows


# --- the model's sizes -----------------------------------------------------------------


def model_facts(config: dict[str, Any]) -> dict[str, Any]:
    """Layers (blocks + the pooled output), trainable parameters and file bytes of the
    config's model: the backbone, and a checkpoint per (task, classes), built on the meta device."""
    import torch

    from .models import ModelSpec, build_model

    model = config["model"]
    spec = ModelSpec(model["name"], dict(model.get("overrides", {})), "scratch")
    classes = {dataset_facts(name).num_classes for name in config["datasets"]} | {1}

    def state_bytes(module) -> int:
        return sum(t.numel() * t.element_size() for t in module.state_dict().values())

    with torch.device("meta"):
        built = {(CLASSIFICATION, k): build_model(spec, CLASSIFICATION, k) for k in classes}
        built |= {(task, None): build_model(spec, task) for task in TASKS if task != CLASSIFICATION}
    any_model = next(iter(built.values()))
    return {
        "layers": len(any_model.backbone.blocks) + 1,
        "backbone_bytes": state_bytes(any_model.backbone),
        "checkpoint_bytes": {key: state_bytes(m) for key, m in built.items()},
        "trainable_bytes": {
            key: sum(p.numel() * p.element_size() for p in m.parameters() if p.requires_grad)
            for key, m in built.items()
        },
    }


def _model_key(run: Run) -> tuple[str, int | None]:
    return (run.task, dataset_facts(run.dataset).num_classes if run.task == CLASSIFICATION else None)


# --- disk --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FolderUse:
    folder: str
    peak: int
    final: int
    what: str


def disk_use(study: StudyDesign, facts: dict[str, Any]) -> list[FolderUse]:
    """Bytes per folder at the peak of the run and at its end (``work/`` may be deleted then)."""
    config, layout = study.config, study.layout
    results, data_root = layout.results, layout.data_root
    checkpoint = facts["checkpoint_bytes"]
    runs = study.training_runs()
    published = sum(len(study.kept_checkpoints(run)) * checkpoint[_model_key(run)] for run in runs)
    keep_best = study.analysed_checkpoint == "best"
    optimizer_copies = {run: 2 if study.training(run)["optimizer"] == "adam" else 1 for run in runs}
    work = sum(
        (len(study.checkpoint_epochs(run)) + keep_best + 1) * checkpoint[_model_key(run)]
        + optimizer_copies[run] * facts["trainable_bytes"][_model_key(run)]
        for run in runs
    )
    n, side, layers = study.stir["n_images"], study.image_size, facts["layers"]
    inversion_file = ((layers + 1) * n * 3 * side * side + layers * n) * _FLOAT32
    inversions = len(study.pretrained_inversions()) * inversion_file
    sources = len(config["sources"]) * facts["backbone_bytes"]
    pair_rows = len(study.pair_jobs()) * 2 * layers * layers
    robustness = config["robustness"]
    corrupted = sum(
        robustness["n_images"] * 6 * dataset_facts(d).image_size ** 2 * 3
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
    return sorted({run.dataset for run in study.training_runs()})


def _published_corrupted(study: StudyDesign) -> list[str]:
    return sorted({run.dataset for run in study.dynamics_runs() if study.corrupted_kind(run.dataset) == "published"})


def _downloaded_data(study: StudyDesign) -> dict[str, tuple[int, int]]:
    """Sizes of the downloadable data the design reads, by dataset name or CIFAR-C folder."""
    sizes = {d: DOWNLOAD_BYTES[d] for d in _datasets_read(study) if not study.is_generated(d) and d in DOWNLOAD_BYTES}
    return sizes | {ARCHIVES[d].folder: DOWNLOAD_BYTES[ARCHIVES[d].folder] for d in _published_corrupted(study)}


@dataclass(frozen=True)
class Download:
    what: str
    source: str  # where it comes from
    destination: str  # where it ends up
    bytes: int | None
    offline: str  # what an offline cluster must provide instead


def downloads(study: StudyDesign, facts: dict[str, Any]) -> list[Download]:
    data_root = study.layout.data_root
    sizes = _downloaded_data(study)
    rows = []
    for dataset in _datasets_read(study):
        if study.is_generated(dataset):
            continue
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

            name = f"{study.config['model']['name']}.{location}"
            hub = timm.models.get_pretrained_cfg(name).hf_hub_id or name
            rows.append(
                Download(
                    f"weights of source '{source}'",
                    f"Hugging Face hub: {hub}",
                    "the Hugging Face cache (HF_HOME)",
                    facts["backbone_bytes"],
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
                    facts["backbone_bytes"],
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
) -> str:
    """The launch plan of a validated config as Markdown (``schema``: the config schema)."""
    study = StudyDesign(config)
    facts = model_facts(config)
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
    lines += [f"| {r.rule} | {r.jobs} | {r.gpu_jobs} | {r.runtime_min or ''} |" for r in jobs.values()]
    work = gpu_work(study)
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
        reason = measurement.applies_to(config["model"], study.image_size)
        if reason:
            lines += [
                "",
                f"Not estimated: these costs were {reason}; measure with `python benchmarks/paper_cost.py --device cuda`.",
                "",
            ]
            continue
        rows = gpu_hours(work, measurement)
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


def load_config(config_files: Sequence[Path], schema: Path) -> dict[str, Any]:
    """The configs merged as Snakemake merges ``--configfile``s, validated (defaults filled) and checked."""
    from snakemake.utils import update_config, validate

    config: dict[str, Any] = {}
    for path in config_files:
        update_config(config, load_config_file(path))
    validate(config, str(schema))
    check_config(config)
    return config


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
    args = parser.parse_args(argv)
    if not args.snakefile.is_file():
        parser.error(f"no Snakefile at {args.snakefile}; pass --snakefile")
    config_files = [path.resolve() for path in (args.configfile or [args.snakefile.parent / "config.yaml"])]
    schema = args.snakefile.parent / "workflow/schemas/config.schema.yaml"
    try:
        config = load_config(config_files, schema)
        jobs = planned_jobs(config_files, args.snakefile.resolve(), args.profile.resolve() if args.profile else None)
    except (ConfigError, LaunchPlanError) as err:
        sys.exit(f"no launch plan: {err}")
    print(render(config, config_files, jobs, schema))


if __name__ == "__main__":
    main()
