"""What the workflow checks about a results folder before it plans any job.

**One configuration per results folder.** A run writes a stamp, ``<results>/.config_stamp.yaml``,
when it starts (:func:`stamp_results_folder`): the configuration's *design* and its digest.
Before any job is planned (``snakemake -n`` included), :func:`check_results_folder` refuses
a configuration whose design differs from the stamp's, naming both configs, the keys that
differ and the fixes: it would otherwise add its jobs to the folder and overwrite the other
configuration's files. The stamp binds once the folder holds a result (:func:`holds_results`:
a file other than the stamp, logs, benchmarks and training work folders), that is once a
job of the run succeeded: a run whose first jobs failed leaves a stamp that the corrected
configuration replaces. The data folder is checked the same way: a ``data_root`` inside the
results folder of another configuration (the default ``results/data`` after only
``results`` was changed) is refused, since this configuration would write its generated
datasets over that study's.

The design is the validated config (defaults filled in) without :data:`OPERATIONAL_KEYS`:
those say where and how the study runs (folders, downloads, device, scheduler resources, the
warm interpreter, the inversion's memory budget, the report's title), not what it computes,
so changing them keeps the folder. Everything else is design, keys added to the schema later
included: a changed model, dataset, source, run, epoch count, seed, variant or analysis
setting is another configuration. A key added to the schema after a stamp was written counts
as its default in that stamp. A folder without a stamp (written before stamps existed) is
taken over by the next run that starts in it.

**Published checkpoints intact.** A run's checkpoints folder (``finetune/<run>/checkpoints``)
is one output of its finetune job, so Snakemake does not notice a file missing or damaged
inside it, and does not remake even the whole folder, or the run's history, while the jobs
that read them are done. :func:`check_published_checkpoints` looks into the folders of
finished finetune jobs: every checkpoint the design publishes there must be a whole
safetensors file; and a run whose outputs are gone while Table 1, which reads every run's
history, is done is named too (Snakemake would report "Nothing to be done"). The way back
(:func:`restore_published_checkpoint`) is a copy of the run's work folder's file, which is
what the job published; without it, the run is trained again (:func:`train_again`).

**Weights files intact.** A ``file:`` source pinned by a ``sha256`` (the shipped source of
the scale model) is checked against it before any job is planned
(:func:`check_weights_files`); its hash is remembered by the file's size and modification
time, so a dry-run hashes a file once.

Nothing here imports torch: the Snakefile runs these checks at parse time.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..atomic import atomic_path
from .config import ConfigError
from .design import StudyDesign
from .layout import Layout, checkpoint_path, locate
from .vocabulary import Run

STAMP_FILE = ".config_stamp.yaml"

#: Config keys (dotted) that do not change what the study computes.
OPERATIONAL_KEYS = (
    "about",
    "results",
    "data_root",
    "download",
    "device",
    "warm_interpreter",
    "resources",
    "stir.memory_budget_gb",
)

#: How many differing keys a refusal lists.
_SHOWN_DIFFERENCES = 8


class ResultsFolderError(ConfigError):
    """The results folder belongs to another configuration, or holds a damaged output."""


# --- one configuration per results folder ---------------------------------------------


def design_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """The study-defining part of a validated config: the config without :data:`OPERATIONAL_KEYS`."""
    design = copy.deepcopy(dict(config))
    for dotted in OPERATIONAL_KEYS:
        *parents, key = dotted.split(".")
        node = design
        for parent in parents:
            node = node.get(parent, {})
        node.pop(key, None)
    return design


def design_digest(config: Mapping[str, Any]) -> str:
    """SHA-256 of :func:`design_of` (keys sorted), the identity of a configuration."""
    return hashlib.sha256(json.dumps(design_of(config), sort_keys=True, default=str).encode()).hexdigest()


def stamp_path(config: Mapping[str, Any]) -> Path:
    return Path(config["results"]) / STAMP_FILE


def _config_names(config_files: Iterable[str | os.PathLike]) -> list[str]:
    return [str(Path(path).resolve()) for path in config_files]


#: Below a results folder, what a job writes before it succeeds or what is not a result:
#: logs, benchmarks (written for a failed job too) and the training runs' work folders.
NOT_RESULTS = ("logs", "benchmarks", "work")


def holds_results(results: str | os.PathLike) -> bool:
    """Whether a results folder holds a result: a file other than its stamp and :data:`NOT_RESULTS`.

    Snakemake deletes the outputs of a failed job, so a folder whose jobs all failed holds none.
    """
    results = Path(results)
    if not results.is_dir():
        return False
    for entry in results.iterdir():
        if entry.name in NOT_RESULTS or entry.name == STAMP_FILE:
            continue
        if entry.is_file() or any(path.is_file() for path in entry.rglob("*")):
            return True
    return False


def _read_stamp(path: Path) -> dict[str, Any]:
    import yaml

    try:
        stamp = yaml.safe_load(path.read_text())
        stamp["digest"], stamp["design"], stamp["config_files"]
    except (yaml.YAMLError, TypeError, KeyError) as err:
        raise ResultsFolderError(
            f"the results folder's stamp {path} is damaged ({type(err).__name__}: {err}); "
            f"delete it if the folder holds this configuration's results (the next run writes it again)"
        ) from None
    return stamp


def stamp_results_folder(config: Mapping[str, Any], config_files: Iterable[str | os.PathLike]) -> Path:
    """Write the stamp of ``config`` into its results folder, unless the folder has a binding one.

    Called when a run starts (Snakemake's ``onstart``), after :func:`check_results_folder`
    passed, so an existing stamp is this configuration's and is kept as first written, or
    not binding yet (the folder holds no result: the runs that wrote it failed), and is
    replaced by this configuration's.
    """
    import yaml

    path = stamp_path(config)
    if path.is_file() and (holds_results(config["results"]) or _read_stamp(path)["digest"] == design_digest(config)):
        return path
    stamp = {
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config_files": _config_names(config_files),
        "digest": design_digest(config),
        "design": design_of(config),
    }
    with atomic_path(path) as tmp:
        tmp.write_text(
            "# The configuration that wrote this results folder (finetune_invariance.study.results_folder).\n"
            + yaml.safe_dump(stamp, sort_keys=True)
        )
    return path


def check_results_folder(
    config: Mapping[str, Any], config_files: Iterable[str | os.PathLike], schema: str | os.PathLike | None = None
) -> None:
    """Raise :class:`ResultsFolderError` when another configuration wrote ``config``'s results folder.

    With the config ``schema``, the stamp's design is validated again first, so a key added
    to the schema since the stamp was written counts as its default there, not as a change.
    """
    results = Path(config["results"])
    path = stamp_path(config)
    if path.is_file() and holds_results(results):
        stamp, shown = _another_design(path, config, schema)
        if shown:
            raise ResultsFolderError(
                f"the results folder '{results}' holds the results of another configuration: "
                f"{' + '.join(stamp['config_files'])} (its stamp {path}, written {stamp.get('written', '?')}); this "
                f"run's configuration {' + '.join(_config_names(config_files))} differs from it in {shown}. Running "
                f"would add this configuration's jobs to that folder and overwrite its files. Either give this "
                f"configuration its own folder{_own_folders_advice(config)}, or delete '{results}' to start "
                f"afresh; if you changed the study on purpose and want Snakemake to redo only what the change "
                f"touches, delete {path}."
            )
    _check_data_root(config, config_files, schema)


def _another_design(
    path: Path, config: Mapping[str, Any], schema: str | os.PathLike | None
) -> tuple[dict[str, Any], str | None]:
    """The stamp at ``path`` and the keys in which ``config``'s design differs from it (None: the same design)."""
    stamp = _read_stamp(path)
    if stamp["digest"] == design_digest(config):
        return stamp, None
    differences = _differing_keys(_with_current_defaults(stamp["design"], schema), design_of(config))
    if not differences:
        return stamp, None
    return stamp, ", ".join(differences[:_SHOWN_DIFFERENCES]) + (
        ", ..." if len(differences) > _SHOWN_DIFFERENCES else ""
    )


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def _own_folders_advice(config: Mapping[str, Any]) -> str:
    """How to give a configuration folders of its own: ``results`` and, where the data folder
    lies inside the results folder, ``data_root`` with it (or it would stay in the old one)."""
    if _inside(Path(config["data_root"]), Path(config["results"])):
        return " (its 'results:' and 'data_root:' keys, or --config results=<folder> data_root=<folder>/data)"
    return " (its 'results:' key, or --config results=<folder>)"


def _check_data_root(
    config: Mapping[str, Any], config_files: Iterable[str | os.PathLike], schema: str | os.PathLike | None
) -> None:
    """Refuse a ``data_root`` inside the results folder of another configuration: generated
    datasets written there would replace that study's."""
    data_root, results = Path(config["data_root"]).resolve(), Path(config["results"]).resolve()
    if data_root.is_relative_to(results):  # this configuration's own folder
        return
    for folder in (data_root, *data_root.parents):
        if not (folder / STAMP_FILE).is_file() or not holds_results(folder):
            continue
        stamp, shown = _another_design(folder / STAMP_FILE, config, schema)
        if shown:
            raise ResultsFolderError(
                f"the data folder '{config['data_root']}' (config data_root) lies inside the results folder "
                f"'{folder}' of another configuration, {' + '.join(stamp['config_files'])} (its stamp "
                f"{folder / STAMP_FILE}); this run's configuration {' + '.join(_config_names(config_files))} differs "
                f"from it in {shown}, and would write its generated datasets over that study's. Give it a data "
                f"folder of its own too: --config results={config['results']} data_root={config['results']}/data "
                "(or the 'data_root:' key)."
            )


def _with_current_defaults(design: dict[str, Any], schema: str | os.PathLike | None) -> Any:
    """A stamp's design with the defaults of the current schema filled in (as is without a schema)."""
    if schema is None:
        return design
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    filled = copy.deepcopy(design)
    try:
        validate(filled, str(schema))
    except WorkflowError as err:  # a key the schema has dropped or renamed since
        return f"<a design the current schema refuses: {err.__context__ or err}>"
    return design_of(filled)


def _differing_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested configs."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return [] if old == new else [prefix or "<top level>"]
    keys = sorted(set(old) | set(new))
    return [
        key
        for name in keys
        for key in _differing_keys(old.get(name), new.get(name), f"{prefix}.{name}" if prefix else name)
    ]


# --- published checkpoints intact -----------------------------------------------------


#: The resume state in a run's work folder (:mod:`.run_folder`), its last file of an epoch:
#: named here, where the parse-time checks read it without importing torch.
RESUME_FILE = "resume.safetensors"

#: The table that reads every training run's history (rule table1): while it is done,
#: Snakemake plans nothing for a run whose outputs are gone.
HISTORY_READER = "table1_accuracy"


def check_published_checkpoints(study: StudyDesign) -> None:
    """Raise :class:`ResultsFolderError` naming every checkpoint that a finished run's
    checkpoints folder lacks or holds damaged (not a whole safetensors file), each with the
    way to restore it (:func:`restore_published_checkpoint`), and every run whose outputs
    are gone while the table that reads its history is done (:data:`HISTORY_READER`), which
    Snakemake would not notice.

    A finetune job is finished when its history and monitor tables exist: it writes them
    after its checkpoints, and Snakemake deletes them before it runs the job again (so a
    job killed while publishing is left to ``--rerun-incomplete``, unless the table that
    reads every history is done).
    """
    layout = study.layout
    reader = layout.path("table", stem=HISTORY_READER)
    problems = []
    for run in study.training_runs():
        folder = layout.path("checkpoints", run)
        outputs = (layout.path("history", run), layout.path("forgetting_monitor", run))
        if not all(path.is_file() for path in outputs):
            if reader.is_file():
                missing = [str(path) for path in (folder, *outputs) if not path.exists()]
                problems.append(
                    f"the run {run.path} lacks {', '.join(missing)} while {reader}, which reads every run's history, "
                    f"is done, so Snakemake would plan nothing for it ('Nothing to be done'): "
                    f"{train_again(layout, run, study.kept_checkpoints(run))}"
                )
            continue
        for label in study.kept_checkpoints(run):
            path = checkpoint_path(folder, label)
            damage = "is missing" if not path.is_file() else _safetensors_damage(path)
            if damage:
                problems.append(f"{path} {damage}: {restore_published_checkpoint(path)}")
    if problems:
        raise ResultsFolderError(
            "published checkpoints or runs are missing or damaged; Snakemake does not remake a file inside "
            "a job's output folder, nor the outputs of a job whose readers are done:\n  " + "\n  ".join(problems)
        )


def restore_published_checkpoint(path: str | os.PathLike) -> str:
    """How to get a published checkpoint (``finetune/<run>/checkpoints/<label>.safetensors``)
    back: it is a copy of the run's work folder's file, which the finetune job checked
    against the checksum it recorded when it wrote it; without a whole work copy, the run
    is trained again (:func:`train_again`)."""
    located = locate("checkpoint", path)
    if located is None:
        return "delete it and rerun the job that wrote it (Snakemake reruns a job whose output is missing)"
    results, values = located
    layout, run = Layout(results, "."), Run.from_wildcards(values)
    work_copy = checkpoint_path(layout.path("work", run), values["checkpoint"])
    if work_copy.is_file() and _safetensors_damage(work_copy) is None:
        folder = Path(path).parent
        return f"copy it again from the run's work folder: {'' if folder.is_dir() else f'mkdir -p {folder} && '}cp {work_copy} {path}"
    return f"its work copy {work_copy} is gone or damaged too, so {train_again(layout, run)}"


def train_again(layout: Layout, run: Run, labels: Iterable[str] | None = None) -> str:
    """How to make Snakemake remake a run's outputs: delete them and the table that reads
    every history (:data:`HISTORY_READER`), whose job then needs them again.

    With ``labels`` (the checkpoints it publishes) all whole in the run's work folder
    beside its resume state, the job finds the run finished there and publishes it again
    without training; otherwise the work folder goes too and the run is trained again.
    """
    work = layout.path("work", run)
    reader = layout.path("table", stem=HISTORY_READER)
    outputs = " ".join(str(layout.path(name, run)) for name in ("checkpoints", "history", "forgetting_monitor"))
    copies = [checkpoint_path(work, label) for label in labels or ()]
    if (
        labels is not None
        and (work / RESUME_FILE).is_file()
        and all(path.is_file() and _safetensors_damage(path) is None for path in copies)
    ):
        return (
            f"publish it again from its work folder {work}: rm -rf {outputs} {reader}, then run your usual "
            "command (the finetune job finds the run finished in its work folder; the jobs that read the run run "
            "again)"
        )
    return (
        f"train the run again: rm -rf {work} {outputs} {reader}, then run your usual command (Snakemake remakes "
        f"{reader.name}, which reads every run's history, so it trains the run; the jobs that read the run run again)"
    )


def _safetensors_damage(path: Path) -> str | None:
    """Why ``path`` is not a whole safetensors file, or None.

    The format: an 8-byte little-endian header length, a JSON header giving each tensor's
    byte range in the data that follows. A truncated or overwritten file fails this check,
    which reads only the header (a bit flip inside the data does not).
    """
    size = path.stat().st_size
    with open(path, "rb") as file:
        length = int.from_bytes(file.read(8), "little") if size >= 8 else None
        if length is None or length > size - 8:
            return f"is damaged ({size} bytes, too short for a safetensors header)"
        try:
            header = json.loads(file.read(length))
            end = max((entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"), default=0)
        except (ValueError, TypeError, KeyError, IndexError):
            return "is damaged (its safetensors header is not readable)"
    if size != 8 + length + end:
        return f"is damaged ({size} bytes where its header describes {8 + length + end})"
    return None


# --- weights files intact -----------------------------------------------------------------


def check_weights_files(study: StudyDesign, cache: str | os.PathLike | None = None) -> None:
    """Raise :class:`ResultsFolderError` for a ``file:`` source whose weights file is missing
    or, where the config pins its ``sha256``, has other bytes (truncated, damaged, replaced).

    ``cache``: a JSON file remembering each file's SHA-256 by its resolved path, size and
    modification time, so that a file is hashed again only when it changed.
    """
    from .runtime import sha256

    remembered = _read_json(cache)
    known = dict(remembered)
    problems = []
    for source, entry in study.config["sources"].items():
        if not entry["weights"].startswith("file:"):
            continue
        path = Path(study.source_model(source)["weights"].removeprefix("file:"))
        if not path.is_file():
            problems.append(f"config key 'sources.{source}.weights': weights file {path} does not exist")
            continue
        expected = entry.get("sha256")
        if expected is None:
            continue
        stat = path.stat()
        key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        known[key] = digest = known.get(key) or sha256(path)
        if digest != expected:
            problems.append(
                f"config key 'sources.{source}.sha256': weights file {path} ({stat.st_size} bytes) has SHA-256 "
                f"{digest}, expected {expected}: it is damaged or another file; {_copy_again(study, path)}, or "
                "correct the sha256 if the expected value is wrong"
            )
    if cache is not None and known != remembered:
        cache = Path(cache)
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache) as tmp:
            tmp.write_text(json.dumps(known, indent=1, sort_keys=True))
    if problems:
        raise ResultsFolderError("\n".join(problems))


def _copy_again(study: StudyDesign, path: Path) -> str:
    """How to get a weights file back: git restores one shipped with the workflow."""
    workflow_dir = study.workflow_dir.resolve()
    if path.resolve().is_relative_to(workflow_dir):
        return f"restore the shipped file: git -C {workflow_dir} checkout -- {path.resolve().relative_to(workflow_dir)}"
    return "copy the file again"


def _read_json(path: str | os.PathLike | None) -> dict[str, str]:
    """A JSON object from ``path``; empty when there is none or it is unreadable (a cache)."""
    if path is None or not Path(path).is_file():
        return {}
    try:
        loaded = json.loads(Path(path).read_text())
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}
