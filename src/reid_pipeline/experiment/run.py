"""Training, embedding and evaluation of one experiment from manifest records (Kedro-free)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from reid_pipeline.data.records import Record
from reid_pipeline.data.samplers import CrossModalitySampler, PKSampler
from reid_pipeline.data.torch_dataset import ManifestDataset, build_loader
from reid_pipeline.data.transforms import build_transforms_by_modality, eval_transform
from reid_pipeline.engine import Features, extract_features, fit, get_rank, get_world_size
from reid_pipeline.evaluation import evaluate_from_features
from reid_pipeline.experiment.config import ConfigError, ExperimentConfig, check_against_data
from reid_pipeline.losses import build_criterion
from reid_pipeline.models import create_model, model_options

logger = logging.getLogger(__name__)


#: the dataset formats whose training data has both modalities
VISIBLE_INFRARED = ("sysu_mm01", "regdb", "llcm")


def is_cross_modality(records: Sequence[Record]) -> bool:
    return any(r.modality for r in records)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(
    name: str,
    *,
    num_classes: int,
    kwargs: Mapping[str, Any],
    cross_modality: bool,
    seed: int = 0,
) -> nn.Module:
    """Create ``name`` with ``kwargs``; on visible-infrared data a model that has a two-stream
    variant (``cross_modality`` option: BoT, AGW) gets it automatically. The initial weights
    depend only on ``seed`` (the untrained reference model is rebuilt from it)."""
    options = dict(kwargs)
    if cross_modality and "cross_modality" in model_options(name):
        options.setdefault("cross_modality", True)
    torch.manual_seed(seed)
    try:
        model = create_model(name, num_classes=num_classes, **options)
    except ValueError as exc:
        raise ConfigError(f"model {name!r}: {exc}") from None
    if getattr(model, "cross_modality", False) and not cross_modality:
        raise ConfigError(
            f"model {name!r} is a visible-infrared model but the training data has no infrared "
            "images; use a visible-infrared dataset (sysu_mm01, regdb, llcm)"
        )
    if cross_modality and not getattr(model, "cross_modality", False):
        warnings.warn(
            f"model {name!r} is single-modality: visible and infrared images share every layer",
            stacklevel=2,
        )
    return model


@dataclass
class TrainOutcome:
    """Weights to keep (the best validated epoch, else the last), the model's spec (enough to
    rebuild it), the per-epoch history and a summary (time, images/s, best epoch)."""

    state_dict: dict[str, torch.Tensor]
    spec: dict[str, Any]
    history: pd.DataFrame
    summary: dict[str, Any]


def _loader_for(records: Sequence[Record], config: ExperimentConfig, *, batch_size: int) -> Any:
    transform = eval_transform(config.height, config.width)
    dataset = ManifestDataset(records, {0: transform, 1: transform}, seed=config.seed)
    return build_loader(
        dataset, batch_size=batch_size, num_workers=config.num_workers, seed=config.seed
    )


def embed_records(
    model: nn.Module,
    records: Sequence[Record],
    config: ExperimentConfig,
    *,
    progress: bool = True,
) -> Features:
    """Embeddings of ``records`` with the test transform (flip-averaged if
    ``evaluation.flip``), in record order."""
    loader = _loader_for(records, config, batch_size=config.eval_batch_size)
    return extract_features(
        model,
        loader,
        device=config.fit.get("device", "auto"),
        flip=bool(config.evaluation.get("flip", False)),
        precision=config.fit.get("precision", "auto"),
        progress=progress,
    )


def dry_run(config: ExperimentConfig, *, cross_modality: bool) -> None:
    """Build the configured model (random weights, 2 classes) and run one training forward at
    the configured input size, so options that do not fit the input (e.g. more parts than
    feature-map rows) fail before any data is read or trained."""
    kwargs = {**config.model_kwargs, "pretrained": False}
    model = build_model(
        config.model_name, num_classes=2, kwargs=kwargs, cross_modality=cross_modality
    )
    try:
        _feature_dims(model, config, cross_modality)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(
            f"{config.name}.model does not run at input {config.height}x{config.width}: {exc}"
        ) from None


def _feature_dims(model: nn.Module, config: ExperimentConfig, cross: bool) -> list[int]:
    """The widths of ``output.feats`` (losses such as center loss need them), from a forward
    pass on a 4-image dummy batch."""
    images = torch.randn(4, 3, config.height, config.width)
    pids = torch.tensor([0, 0, 1, 1])
    modality = torch.tensor([0, 1, 0, 1]) if cross else None
    model.train()
    out = model(images, targets=pids, modality=modality)
    model.zero_grad(set_to_none=True)
    return [int(f.shape[1]) for f in out.feats]


def train_from_records(
    fit_records: Sequence[Record],
    val_query: Sequence[Record],
    val_gallery: Sequence[Record],
    config: ExperimentConfig,
    *,
    progress: bool = True,
) -> TrainOutcome:
    """Train ``config``'s model on ``fit_records`` (pids relabelled 0..N-1), validating on the
    held-out ``val_query`` / ``val_gallery`` identities for model selection."""
    if not fit_records:
        raise ConfigError(f"{config.name}: the training split is empty")
    pids = [r.pid for r in fit_records]
    modality = [r.modality for r in fit_records]
    num_classes = max(pids) + 1
    if sorted(set(pids)) != list(range(num_classes)):
        raise ConfigError(f"{config.name}: training pids must be relabelled 0..N-1")
    cross = is_cross_modality(fit_records)
    check_against_data(config, pids, modality)
    model = build_model(
        config.model_name,
        num_classes=num_classes,
        kwargs=config.model_kwargs,
        cross_modality=cross,
        seed=config.seed,
    )
    transforms = build_transforms_by_modality(
        config.augmentation, height=config.height, width=config.width, seed=config.seed
    )
    dataset = ManifestDataset(fit_records, transforms, seed=config.seed)
    # under torchrun every rank samples a disjoint share of each epoch's batches
    shard = {"num_replicas": get_world_size(), "rank": get_rank()}
    if cross:
        sampler: Any = CrossModalitySampler(
            pids, modality, p=config.p, k=config.k, seed=config.seed, **shard
        )
    else:
        sampler = PKSampler(pids, p=config.p, k=config.k, seed=config.seed, **shard)
    loader = build_loader(
        dataset,
        batch_size=sampler.batch_size,
        sampler=sampler,
        num_workers=config.num_workers,
        seed=config.seed,
        persistent_workers=config.num_workers > 0,
    )
    criterion = build_criterion(
        config.losses,
        context={"num_classes": num_classes, "feat_dims": _feature_dims(model, config, cross)},
    )

    validate = None
    if val_query and val_gallery:

        def validate(net: nn.Module) -> dict[str, float]:
            q = embed_records(net, val_query, config, progress=False)
            g = embed_records(net, val_gallery, config, progress=False)
            result = evaluate_from_features(
                q.feats,
                g.feats,
                q.pids,
                g.pids,
                q.camids,
                g.camids,
                metric=config.evaluation.get("metric", "cosine"),
            )
            return {
                "R1": float(result.cmc[0]),
                "mAP": float(result.mAP),
                "mINP": float(result.mINP),
            }

    fit_opts = {k: v for k, v in config.fit.items() if k != "epochs"}
    result = fit(
        model,
        loader,
        criterion,
        epochs=config.fit["epochs"],
        optimizer=config.optimizer,
        scheduler=config.scheduler,
        checkpoint_dir=Path(config.checkpoint_dir) if config.checkpoint_dir else None,
        seed=config.seed,
        validate=validate,
        val_every=int(config.validation.get("every", 1)),
        select_metric=str(config.validation.get("metric", "mAP")),
        **({"progress": progress} | fit_opts),
    )
    use_best = result.best_state_dict is not None
    state = result.best_state_dict if use_best else result.state_dict
    history = result.history
    spec = {
        "name": config.model_name,
        "num_classes": num_classes,
        "kwargs": dict(config.model_kwargs),
        "cross_modality": cross,
        "feat_dim": int(getattr(model, "feat_dim", 0)),
        "input": {"height": config.height, "width": config.width},
        "params": count_parameters(model),
        "seed": config.seed,
    }
    summary = {
        "epochs": int(config.fit["epochs"]),
        "seconds": float(history["time_s"].sum()) if "time_s" in history else None,
        "images_per_s": float(history["images_per_s"].mean())
        if "images_per_s" in history
        else None,
        "selected_epoch": int(result.best_epoch) if use_best else int(config.fit["epochs"]),
        "selected_by": f"validation {config.validation.get('metric', 'mAP')}"
        if use_best
        else "last epoch",
        "best_validation": result.best_metric,
        "resumed_from_epoch": result.resumed_from,
        "train_images": len(fit_records),
        "train_ids": num_classes,
    }
    return TrainOutcome(state_dict=state, spec=spec, history=history, summary=summary)


def rebuild_model(
    spec: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor] | None
) -> nn.Module:
    """The model of ``spec`` with ``state_dict`` loaded (None: the untrained initial weights,
    identical to those training started from)."""
    model = build_model(
        spec["name"],
        num_classes=int(spec["num_classes"]),
        kwargs=spec.get("kwargs", {}),
        cross_modality=bool(spec.get("cross_modality", False)),
        seed=int(spec.get("seed", 0)),
    )
    if state_dict is not None:
        missing, unexpected = model.load_state_dict(dict(state_dict), strict=False)
        if missing or unexpected:
            raise ValueError(
                f"weights do not fit model {spec['name']!r}: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}"
            )
    model.eval()
    return model


HEADLINE_KEYS = ("R1", "R5", "R10", "R20", "mAP", "mINP")


def headline(protocol_result: Mapping[str, Any]) -> dict[str, Any]:
    """The one setting a run is summarised by (the first setting of the protocol result)."""
    settings = protocol_result["settings"]
    name = next(iter(settings))
    values = settings[name]["mean"]
    return {"protocol": name, **{k: float(values[k]) for k in HEADLINE_KEYS if k in values}}
