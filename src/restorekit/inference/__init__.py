"""One inference path for every model (``restorekit restore``, ``eval``, ``rk.restore``, validation).

- :mod:`.prepare`: options, devices and the prepared model (range, colour order, precision, layout);
- :mod:`.tiling`: tile plans, blending windows, receptive field, the x8 ensemble;
- :mod:`.restore`: :func:`restore_tensor`, the one entry point, and :func:`restore_pixels` for one image;
- :mod:`.batch`: files and folders (planned outputs checked before any work, reads and writes overlapped).
"""

from .batch import BatchInterrupted, BatchReport, Job, plan_outputs, restore_files
from .prepare import (
    DEVICES,
    PRECISIONS,
    InferenceOptions,
    ModelSpec,
    RestoreModule,
    auto_precision,
    check_options,
    check_tiling,
    describe_precision,
    has_foldable_batchnorm,
    model_metadata,
    model_spec,
    prepare_model,
    resolve_device,
    resolve_precision,
    resolved_options,
    uses_channels_last,
)
from .restore import resolve_overlap, restore_channels, restore_pixels, restore_tensor
from .tiling import (
    TilePlan,
    default_tile_batch,
    dihedral,
    dihedral_inverse,
    pad_to_size,
    plan_tiles,
    receptive_radius,
    round_up,
    split_overlap,
    tile_layout,
    tile_starts,
    tile_window,
    with_ensemble,
)

__all__ = [
    "DEVICES", "PRECISIONS", "BatchInterrupted", "BatchReport", "InferenceOptions", "Job", "ModelSpec",
    "RestoreModule", "TilePlan", "auto_precision", "check_options", "check_tiling", "default_tile_batch",
    "describe_precision", "dihedral", "dihedral_inverse", "has_foldable_batchnorm",
    "model_metadata", "model_spec", "pad_to_size", "plan_outputs", "plan_tiles", "prepare_model",
    "receptive_radius", "resolve_device", "resolve_overlap", "resolve_precision", "resolved_options",
    "restore_channels", "restore_files", "restore_pixels", "restore_tensor", "round_up", "split_overlap",
    "tile_layout", "tile_starts", "tile_window", "uses_channels_last", "with_ensemble",
]
