"""Training engine: ``fit()``, checkpoints and exact resume, DDP, precision, extraction.

See docs/training.md."""

from reid_pipeline.engine.checkpoint import (
    CheckpointError,
    atomic_save,
    atomic_write_text,
    load_checkpoint,
)
from reid_pipeline.engine.device import resolve_device, resolve_precision
from reid_pipeline.engine.distributed import (
    DistContext,
    get_rank,
    get_world_size,
    is_main_process,
    setup_distributed,
    teardown_distributed,
)
from reid_pipeline.engine.extract import Features, extract_features
from reid_pipeline.engine.fit import FitResult, fit
from reid_pipeline.engine.loader import ShardedBatchSampler
from reid_pipeline.engine.loop import NonFiniteLossError
from reid_pipeline.engine.optim import LRSchedule, build_optimizer, build_scheduler
from reid_pipeline.engine.seed import WorkerInit, derive_seed, epoch_seed, seed_everything

__all__ = [
    "CheckpointError",
    "DistContext",
    "Features",
    "FitResult",
    "LRSchedule",
    "NonFiniteLossError",
    "ShardedBatchSampler",
    "WorkerInit",
    "atomic_save",
    "atomic_write_text",
    "build_optimizer",
    "build_scheduler",
    "derive_seed",
    "epoch_seed",
    "extract_features",
    "fit",
    "get_rank",
    "get_world_size",
    "is_main_process",
    "load_checkpoint",
    "resolve_device",
    "resolve_precision",
    "seed_everything",
    "setup_distributed",
    "teardown_distributed",
]
