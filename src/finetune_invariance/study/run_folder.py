"""A training run's work folder: what it has written so far, the state it resumes from,
and the checksums that guard its checkpoints.

Files in the folder:

- ``history.parquet``: :data:`~finetune_invariance.study.tables.TRAINING_HISTORY`, one row
  per finished epoch, rewritten after every epoch;
- ``forgetting_monitor.parquet``: the forgetting measured while training, if monitored;
- ``epoch_{e:03d}.safetensors``: checkpoints at the requested epochs (0 = starting weights);
- ``best.safetensors`` (``keep_best``): the epoch with the best test metric so far
  (:func:`.history.best_epoch`);
- ``resume.safetensors``: model and optimizer tensors after the last finished epoch, with
  one sorted-JSON header entry holding the run's identity, history, forgetting
  measurements, the optimizer's settings and the SHA-256 of every checkpoint written,
  which :func:`verified_checkpoint` checks before a checkpoint leaves the folder.

Every file is written atomically, and the resume state last, so it is the commit point of
an epoch: a run killed at any moment restarts from its last finished epoch. The resume
state holds tensors and JSON only (no pickle: loading it runs no code), so its bytes
depend on the values alone: a run resumed after a kill writes the same bytes as one that
was never interrupted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..atomic import atomic_path
from .checkpoints import save_checkpoint
from .history import best_epoch
from .layout import BEST_LABEL, checkpoint_label, checkpoint_path
from .results_folder import RESUME_FILE
from .runtime import sha256
from .tables import FORGETTING_MONITOR, TRAINING_HISTORY, conform, read_table, write_table
from .vocabulary import Run

HISTORY_FILE = "history.parquet"
MONITOR_FILE = "forgetting_monitor.parquet"
RESUME_FORMAT_VERSION = 3
#: The resume state of format 2 (a pickle), which this version does not read.
OLD_RESUME_FILE = "resume.pt"
_HEADER_KEY = "finetune_invariance.resume"
_MODEL, _OPTIMIZER = "model/", "optimizer/"


def resume_identity(
    config: dict[str, Any],
    run_name: str,
    checkpoint_epochs: set[int] | frozenset[int],
    keep_best: bool,
    monitor_schedule: dict[str, Any] | None,
) -> dict[str, Any]:
    """What a resume state must match: the run, its whole training config, the checkpoints it
    keeps and when it measures forgetting (None: no monitor), as JSON values."""
    identity = {
        "run": run_name,
        "config": config,
        "checkpoint_epochs": sorted(checkpoint_epochs),
        "keep_best": keep_best,
        "monitor": monitor_schedule,
    }
    return json.loads(json.dumps(identity))


# --- the resume state file --------------------------------------------------------------


def _split_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """An optimizer's state dict as (JSON settings, tensors by name)."""
    tensors, per_parameter = {}, {}
    for index, values in state["state"].items():
        entry = per_parameter[str(index)] = {"tensors": [], "values": {}}
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{_OPTIMIZER}{index}/{name}"] = value
                entry["tensors"].append(name)
            else:
                entry["values"][name] = value
    return {"param_groups": state["param_groups"], "state": per_parameter}, tensors


def _join_optimizer_state(settings: dict[str, Any], tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    state = {
        int(index): {**entry["values"], **{name: tensors[f"{_OPTIMIZER}{index}/{name}"] for name in entry["tensors"]}}
        for index, entry in settings["state"].items()
    }
    return {"state": state, "param_groups": settings["param_groups"]}


def write_resume_state(
    path: Path, header: dict[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> None:
    """Write the resume state atomically: ``header`` (JSON values) and the optimizer's
    settings in one sorted-JSON header entry, the model's and optimizer's tensors beside it."""
    settings, optimizer_tensors = _split_optimizer_state(optimizer.state_dict())
    tensors = {f"{_MODEL}{key}": value for key, value in model.state_dict().items()} | optimizer_tensors
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in tensors.items()}
    entry = json.dumps({**header, "optimizer": settings}, sort_keys=True, allow_nan=True)
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={_HEADER_KEY: entry})


def _unreadable(path: Path, problem: str) -> RuntimeError:
    return RuntimeError(f"resume state {path} {problem}; delete {path.parent} to train the run again")


def read_resume_header(path: Path) -> dict[str, Any]:
    """The JSON header of a resume state (reading no tensors)."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as file:
            raw = (file.metadata() or {}).get(_HEADER_KEY)
    except (SafetensorError, OSError) as err:
        raise _unreadable(path, f"cannot be read ({err})") from err
    if raw is None:
        raise _unreadable(path, f"is not a resume state of this study (no '{_HEADER_KEY}' header entry)")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise _unreadable(path, f"has a damaged header ({err})") from err


def read_resume_state(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    """(header, model state dict, optimizer state dict) of a resume state file."""
    header = read_resume_header(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as file:
            tensors = {key: file.get_tensor(key) for key in file.keys()}
    except (SafetensorError, OSError) as err:
        raise _unreadable(path, f"cannot be read ({err})") from err
    model_state = {key[len(_MODEL) :]: value for key, value in tensors.items() if key.startswith(_MODEL)}
    try:
        optimizer_state = _join_optimizer_state(header.pop("optimizer"), tensors)
    except (KeyError, TypeError, ValueError) as err:
        raise _unreadable(path, f"has an incomplete optimizer state ({err!r})") from err
    return header, model_state, optimizer_state


# --- the run folder ---------------------------------------------------------------------


class RunFolder:
    """What a run has written to its work folder so far: its history, its forgetting
    measurements and the checksums of its checkpoints; :meth:`finish_epoch` commits an epoch."""

    def __init__(self, out_dir: Path, identity: dict[str, Any]):
        self.out_dir = out_dir
        self.identity = identity
        self.history: list[dict[str, Any]] = []
        self.forgetting: list[dict[str, Any]] = []
        self.checksums: dict[str, str] = {}

    @property
    def resume_path(self) -> Path:
        return self.out_dir / RESUME_FILE

    @property
    def last_epoch(self) -> int:
        return self.history[-1]["epoch"] if self.history else 0

    def resume(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> bool:
        """Load the last finished epoch's state into ``model`` and ``optimizer``; False when
        the run has not finished an epoch yet. The state must be this run's (its identity),
        and every checkpoint it recorded must still have the bytes it wrote."""
        if (self.out_dir / OLD_RESUME_FILE).exists():
            raise RuntimeError(
                f"{self.out_dir / OLD_RESUME_FILE} is the resume state of an older version of the study, which "
                f"cannot be resumed; delete {self.out_dir} to train the run again"
            )
        if not self.resume_path.exists():
            return False
        header, model_state, optimizer_state = read_resume_state(self.resume_path)
        if header.get("format_version") != RESUME_FORMAT_VERSION or header.get("identity") != self.identity:
            raise ValueError(
                f"resume state {self.resume_path} belongs to another run or config: saved {header.get('identity')}, "
                f"now {self.identity}; delete {self.out_dir} to train the run again with the new settings"
            )
        try:
            model.load_state_dict(model_state)
            optimizer.load_state_dict(optimizer_state)
        except (RuntimeError, ValueError, KeyError) as err:
            raise _unreadable(self.resume_path, f"does not fit this model ({err})") from err
        self.history, self.checksums, self.forgetting = header["history"], header["checksums"], header["forgetting"]
        for label, recorded in self.checksums.items():
            _check_checksum(checkpoint_path(self.out_dir, label), recorded)
        return True

    def save_checkpoint(self, model: torch.nn.Module, label: int | str, metadata: dict[str, Any]) -> None:
        path = save_checkpoint(checkpoint_path(self.out_dir, label), model, metadata)
        self.checksums[checkpoint_label(label)] = sha256(path)

    def record_forgetting(self, measured: pd.DataFrame, steps_done: int, steps_per_epoch: int) -> None:
        """Keep a monitor measurement (LAYER_METRICS rows of metric 'forgetting')."""
        context = {"run": self.identity["run"], "step": steps_done, "training_epochs": steps_done / steps_per_epoch}
        self.forgetting += [
            {**context, "seed": int(row.seed), "layer": int(row.layer), "forgetting": float(row.value)}
            for row in measured.itertuples(index=False)
        ]

    def finish_epoch(
        self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, row: dict[str, Any], keep: bool, keep_best: bool
    ) -> None:
        """Record the epoch and write its files: the history, the forgetting measurements, its
        checkpoint if ``keep``, the best checkpoint if ``keep_best`` and it is the best so
        far, and the resume state last, as the epoch's commit point."""
        self.history.append(row)
        epoch = row["epoch"]
        write_table(pd.DataFrame(self.history), self.out_dir / HISTORY_FILE, TRAINING_HISTORY)
        if self.forgetting:
            write_table(_monitor_table(self.forgetting), self.out_dir / MONITOR_FILE, FORGETTING_MONITOR)
        metadata = {
            "epoch": epoch,
            "run": self.identity["run"],
            "metrics": row,
            "train_config": self.identity["config"],
        }
        if keep:
            self.save_checkpoint(model, epoch, metadata)
        if keep_best and best_epoch(self.history) == epoch:
            self.save_checkpoint(model, BEST_LABEL, metadata)
        header = {
            "format_version": RESUME_FORMAT_VERSION,
            "identity": self.identity,
            "history": self.history,
            "forgetting": self.forgetting,
            "checksums": self.checksums,
        }
        write_resume_state(self.resume_path, header, model, optimizer)

    def history_table(self) -> pd.DataFrame:
        return conform(pd.DataFrame(self.history, columns=list(TRAINING_HISTORY.columns)), TRAINING_HISTORY)


def verified_checkpoint(out_dir: str | os.PathLike, epoch: int | str) -> Path:
    """The path of a checkpoint in a run's work folder, after checking that its bytes are
    those the run wrote (the SHA-256 its resume state recorded).

    Raises ``FileNotFoundError`` or ``RuntimeError`` naming the file and saying what to
    delete: a damaged or missing work file can only be made again by training again.
    """
    out_dir = Path(out_dir)
    resume = out_dir / RESUME_FILE
    label = checkpoint_label(epoch)
    recorded = read_resume_header(resume).get("checksums", {}).get(label) if resume.exists() else None
    if recorded is None:
        raise FileNotFoundError(
            f"the run in {out_dir} has not recorded a checkpoint '{label}' (no finished epoch wrote it); "
            f"delete {out_dir} to train the run again"
        )
    path = checkpoint_path(out_dir, label)
    _check_checksum(path, recorded)
    return path


def _check_checksum(path: Path, recorded: str) -> None:
    if not path.is_file() or sha256(path) != recorded:
        problem = "is missing" if not path.is_file() else "differs from the bytes the run wrote (damaged on disk)"
        raise RuntimeError(f"checkpoint {path} {problem}; delete {path.parent} to train the run again")


def _monitor_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The monitor's rows as FORGETTING_MONITOR, the run's keys from its name."""
    table = pd.DataFrame(rows)
    context = Run.parse(table["run"].iloc[0]).context
    return table.drop(columns="run").assign(**context)


def monitor_table(out_dir: str | os.PathLike) -> pd.DataFrame:
    """The forgetting a run measured while training (empty when it had no monitor)."""
    path = Path(out_dir) / MONITOR_FILE
    if not path.exists():
        return conform(pd.DataFrame({c: [] for c in FORGETTING_MONITOR.columns}), FORGETTING_MONITOR)
    return read_table(path, FORGETTING_MONITOR)
