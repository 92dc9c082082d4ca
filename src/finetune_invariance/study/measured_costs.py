"""The GPU costs measured so far, per unit of work, each with its device, date and source.

The one place these numbers live: the launch plan (:mod:`.launch_plan`) turns a config's
work into GPU-hours with them, and ``benchmarks/paper_cost.py`` prints them beside its own
measurement (which, run on a GPU, gives the values of a new :class:`Measurement`). A cost
holds only for the model and settings it was measured with (:meth:`Measurement.applies_to`).

Units of work:

- ``training_image_<precision>``: one image through one training step (forward, backward,
  optimizer) at the measured batch size, the run's training precision;
- ``evaluated_image``: one image through a forward pass without gradients;
- ``inversion_image_step_<precision>``: one inversion iteration of one image through every
  layer of the model (a job of n images and T iterations is n * T units).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Measurement:
    """Seconds per unit of work on one device, for one model at one input size."""

    device: str  # as torch.cuda.get_device_name reports it
    date: str  # ISO date of the measurement
    source: str  # the commands that measured it, with the numbers they printed
    model: str  # timm model name
    overrides: dict[str, Any]  # its timm keyword overrides
    image_size: int
    batch_size: int  # of the training measurement
    seconds: dict[str, float]  # unit of work -> seconds, as measured
    derived: dict[str, tuple[float, str]] = field(default_factory=dict)  # unit -> (seconds, how derived)

    def cost(self, unit: str) -> float | None:
        if unit in self.seconds:
            return self.seconds[unit]
        return self.derived[unit][0] if unit in self.derived else None

    def applies_to(self, model: dict[str, Any], image_size: int) -> str | None:
        """None when the measurement holds for the config's ``model`` at ``image_size``, else why not."""
        measured = (self.model, dict(self.overrides), self.image_size)
        if (model["name"], dict(model.get("overrides", {})), image_size) != measured:
            return (
                f"measured for {self.model} (overrides {self.overrides}) at {self.image_size} px, "
                f"not {model['name']} (overrides {dict(model.get('overrides', {}))}) at {image_size} px"
            )
        return None


#: ViT-B/32 at 224 px, 13 layers: the forward pass is 4.4 GMAC per image.
_TRAINING_BF16 = 1 / 7802  # s per image at batch 256: 20.7% of the H200's dense bf16 peak (2 FLOP per MAC)

MEASUREMENTS: tuple[Measurement, ...] = (
    Measurement(
        device="NVIDIA H200",
        date="2026-11-28",
        source=(
            "benchmarks/train_throughput.py (7802 img/s bf16, 5480 img/s fp32, batch 256) and "
            "benchmarks/inversion_precision.py (1.59 s per fp32 step of 13 layers x 500 images)"
        ),
        model="vit_base_patch32_224",
        overrides={},
        image_size=224,
        batch_size=256,
        seconds={
            "training_image_bf16": _TRAINING_BF16,
            "training_image_fp32": 1 / 5480,
            "inversion_image_step_fp32": 1.59 / 500,
        },
        derived={
            "evaluated_image": (
                _TRAINING_BF16 / 3,
                "not measured: a forward pass, a third of a bf16 training step (forward + backward is about 3 forwards)",
            ),
        },
    ),
)
