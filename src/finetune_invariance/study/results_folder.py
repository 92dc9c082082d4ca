"""What the workflow checks about a results folder before it plans any job.

**One configuration per results folder.** A run writes a stamp, ``<results>/.config_stamp.yaml``,
when it starts (:func:`stamp_results_folder`): the configuration's *design* and its digest.
Before any job is planned (``snakemake -n`` included), :func:`check_results_folder` refuses
a configuration whose design differs from the stamp's, naming both configs, the keys that
differ and the fixes: it would otherwise add its jobs to the folder and overwrite the other
configuration's files.

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
inside it, and does not remake even the whole folder while the jobs that read it are done.
:func:`check_published_checkpoints` looks into the folders of finished finetune jobs: every
checkpoint the design publishes there must be a whole safetensors file. The way back
(:func:`restore_published_checkpoint`) is a copy of the run's work folder's file, which is
what the job published; without it, the run is trained again.

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


def stamp_results_folder(config: Mapping[str, Any], config_files: Iterable[str | os.PathLike]) -> Path:
    """Write the stamp of ``config`` into its results folder, unless the folder has one.

    Called when a run starts (Snakemake's ``onstart``), after :func:`check_results_folder`
    passed, so an existing stamp is this configuration's and is kept as first written.
    """
    import yaml

    path = stamp_path(config)
    if path.is_file():
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
    import yaml

    path = stamp_path(config)
    if not path.is_file():
        return
    try:
        stamp = yaml.safe_load(path.read_text())
        recorded, design, written_by = stamp["digest"], stamp["design"], stamp["config_files"]
    except (yaml.YAMLError, TypeError, KeyError) as err:
        raise ResultsFolderError(
            f"the results folder's stamp {path} is damaged ({type(err).__name__}: {err}); "
            f"delete it if the folder holds this configuration's results (the next run writes it again)"
        ) from None
    if recorded == design_digest(config):
        return
    differences = _differing_keys(_with_current_defaults(design, schema), design_of(config))
    if not differences:
        return
    shown = ", ".join(differences[:_SHOWN_DIFFERENCES]) + (", ..." if len(differences) > _SHOWN_DIFFERENCES else "")
    results = config["results"]
    raise ResultsFolderError(
        f"the results folder '{results}' holds the results of another configuration: {' + '.join(written_by)} "
        f"(its stamp {path}, written {stamp.get('written', '?')}); this run's configuration "
        f"{' + '.join(_config_names(config_files))} differs from it in {shown}. Running would add this "
        f"configuration's jobs to that folder and overwrite its files. Either give this configuration its "
        f"own folder (its 'results:' key, or --config results=<folder>), or delete '{results}' to start "
        f"afresh; if you changed the study on purpose and want Snakemake to redo only what the change "
        f"touches, delete {path}."
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


def check_published_checkpoints(study: StudyDesign) -> None:
    """Raise :class:`ResultsFolderError` naming every checkpoint that a finished run's
    checkpoints folder lacks or holds damaged (not a whole safetensors file), each with the
    way to restore it (:func:`restore_published_checkpoint`).

    A finetune job is finished when its history and monitor tables exist: it writes them
    after its checkpoints, and Snakemake deletes them before it runs the job again (so a
    job killed while publishing is left to ``--rerun-incomplete``).
    """
    layout = study.layout
    problems = []
    for run in study.training_runs():
        folder = layout.path("checkpoints", run)
        if not (layout.path("history", run).is_file() and layout.path("forgetting_monitor", run).is_file()):
            continue
        for label in study.kept_checkpoints(run):
            path = checkpoint_path(folder, label)
            damage = "is missing" if not path.is_file() else _safetensors_damage(path)
            if damage:
                problems.append(f"{path} {damage}: {restore_published_checkpoint(path)}")
    if problems:
        raise ResultsFolderError(
            "published checkpoints are missing or damaged; Snakemake does not remake a file inside "
            "a job's output folder, nor the folder while the jobs that read it are done:\n  " + "\n  ".join(problems)
        )


def restore_published_checkpoint(path: str | os.PathLike) -> str:
    """How to get a published checkpoint (``finetune/<run>/checkpoints/<label>.safetensors``)
    back: it is a copy of the run's work folder's file, which the finetune job checked
    against the checksum it recorded when it wrote it."""
    located = locate("checkpoint", path)
    if located is None:
        return "delete it and rerun the job that wrote it (Snakemake reruns a job whose output is missing)"
    results, values = located
    layout, run = Layout(results, "."), Run.from_wildcards(values)
    work_copy = checkpoint_path(layout.path("work", run), values["checkpoint"])
    if work_copy.is_file() and _safetensors_damage(work_copy) is None:
        folder = Path(path).parent
        return f"copy it again from the run's work folder: {'' if folder.is_dir() else f'mkdir -p {folder} && '}cp {work_copy} {path}"
    history = layout.path("history", run)
    return (
        f"its work copy {work_copy} is gone or damaged too, so the run is trained again: delete {history} and "
        f"the folder {layout.path('checkpoints', run)}, then run your usual command with --forcerun {history} "
        "added (Snakemake does not remake a missing output whose readers are done; the jobs that read the "
        "checkpoints run again too)"
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
