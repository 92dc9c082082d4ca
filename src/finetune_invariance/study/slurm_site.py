"""The SLURM profile's site values (``profiles/slurm/config.yaml``), checked before any job
is submitted.

The profile reads each site value from an environment variable ``FTI_SLURM_<NAME>`` and
falls back to the default written in the profile. A default ``YOUR_<NAME>`` is a
placeholder: a run with it would submit jobs SLURM rejects (or charge a guessed account),
so :func:`check_site_values` stops the run, dry-runs included, naming the variable to set.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .config import ConfigError

PLACEHOLDER_PREFIX = "YOUR_"
VARIABLE_PREFIX = "FTI_SLURM_"
PROFILE = "profiles/slurm/config.yaml"


def _as_given(value: object) -> str:
    """A resource value as written in the profile (Snakemake may keep a string's quotes)."""
    return "" if value is None else str(value).strip("'\"")


def placeholder_variable(value: object) -> str | None:
    """The environment variable a placeholder stands for ('YOUR_ACCOUNT' -> 'FTI_SLURM_ACCOUNT'), else None."""
    text = _as_given(value)
    return VARIABLE_PREFIX + text.removeprefix(PLACEHOLDER_PREFIX) if text.startswith(PLACEHOLDER_PREFIX) else None


def _resource_values(resource_settings: Any) -> Iterator[tuple[str, str, object]]:
    """(where, resource name, value as given) of Snakemake's ``workflow.resource_settings``:
    the default resources and the per-rule ones (``set-resources``)."""
    if resource_settings.default_resources is not None:
        for name, resource in resource_settings.default_resources.items():
            yield "default-resources", name, getattr(resource, "raw", resource)
    for rule, resources in resource_settings.overwrite_resources.items():
        for name, resource in resources.items():
            yield f"rule {rule}", name, getattr(resource, "raw", resource)


def check_site_values(resource_settings: Any) -> None:
    """Raise :class:`ConfigError` naming every placeholder left among the resources Snakemake
    was given, with the environment variable that fills it."""
    unfilled: dict[str, dict[str, list[str]]] = {}
    for where, name, value in _resource_values(resource_settings):
        variable = placeholder_variable(value)
        if variable:
            unfilled.setdefault(variable, {}).setdefault(f"{name} = {_as_given(value)}", []).append(where)
    if unfilled:
        lines = [
            f"{variable}: " + "; ".join(f"{use} ({', '.join(wheres)})" for use, wheres in uses.items())
            for variable, uses in sorted(unfilled.items())
        ]
        raise ConfigError(
            "the SLURM profile's site values are placeholders, so nothing was submitted:\n  "
            + "\n  ".join(lines)
            + f"\nSet {', '.join(sorted(unfilled))} in the environment, or replace the defaults at the top of "
            f"{PROFILE} ({VARIABLE_PREFIX}ACCOUNT='' submits without an account)."
        )
