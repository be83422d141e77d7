"""Training, embedding and evaluation of one experiment from manifest records (Kedro-free).

Everything here receives the typed ``Experiment`` / ``Recipe`` (``recipe.py``) or plain keyword
arguments; defaults live in the recipe models, never here."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from reid_pipeline.data.records import Record
from reid_pipeline.data.samplers import CrossModalitySampler, PKSampler
from reid_pipeline.data.torch_dataset import ManifestDataset, build_loader
from reid_pipeline.data.transforms import build_transforms_by_modality, eval_transform
from reid_pipeline.engine import Features, extract_features, fit, get_rank, get_world_size
from reid_pipeline.errors import ConfigError, WeightsError
from reid_pipeline.evaluation import evaluate_from_features, evaluate_protocol
from reid_pipeline.experiment.checks import check_against_data
from reid_pipeline.experiment.modelling import build_model, check_modalities, feature_dims
from reid_pipeline.experiment.recipe import Experiment, Recipe, checkpoint_path
from reid_pipeline.io.digest import json_sha256, state_dict_sha256
from reid_pipeline.losses import build_criterion

logger = logging.getLogger(__name__)


def is_cross_modality(records: Sequence[Record]) -> bool:
    return any(r.modality for r in records)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass
class TrainOutcome:
    """Weights to keep (the best validated epoch, else or with ``validation.select: last`` the
    last), the model's spec (enough to rebuild it), the per-epoch history and a summary (time,
    images/s, the kept epoch and why)."""

    state_dict: dict[str, torch.Tensor]
    spec: dict[str, Any]
    history: pd.DataFrame
    summary: dict[str, Any]


def embed_records(
    model: nn.Module, records: Sequence[Record], recipe: Recipe, *, progress: bool = True
) -> Features:
    """Embeddings of ``records`` with the test transform (flip-averaged if
    ``evaluation.flip``), in record order, in ``evaluation.precision`` and in the memory format
    the recipe trains in (``fit.channels_last``: the same numbers up to float rounding)."""
    transform = eval_transform(recipe.input.height, recipe.input.width)
    dataset = ManifestDataset(records, {0: transform, 1: transform}, seed=recipe.seed)
    loader = build_loader(
        dataset,
        batch_size=recipe.loader.eval_batch_size,
        num_workers=recipe.loader.num_workers,
        seed=recipe.seed,
    )
    return extract_features(
        model,
        loader,
        device=recipe.fit.device,
        flip=recipe.evaluation.flip,
        precision=recipe.evaluation.precision,
        channels_last=recipe.fit.channels_last,
        progress=progress,
    )


def _records_digest(records: Sequence[Record]) -> str:
    return json_sha256([[r.path, r.pid, r.camid, r.modality] for r in records])


def training_fingerprint(
    experiment: Experiment, fit_records: Sequence[Record], num_classes: int
) -> dict[str, str]:
    """A digest per part of the settings that decide the trained weights. A checkpoint resumes
    only when every part matches (``fit(fingerprint=...)``); ``epochs`` is left out so a run can
    be extended where the schedule allows it."""
    r = experiment.recipe
    parts: dict[str, Any] = {
        "model": {"model": r.model.model_dump(), "num_classes": num_classes},
        "input": r.input.model_dump(),
        "augmentation": r.augmentation,
        "sampler": r.sampler.model_dump(),
        "losses": [loss.model_dump() for loss in r.losses],
        "optimizer": r.optimizer.spec(),
        "scheduler": r.scheduler,
        "precision": {"precision": r.fit.precision, "grad_clip": r.fit.grad_clip},
        # select only picks which of the trained epochs a run returns (best.pt or last.pt)
        "validation": r.validation.model_dump(exclude={"select"}),
        "seed": r.seed,
        "dataset": experiment.dataset.model_dump(),
        "train_data": _records_digest(fit_records),
    }
    return {k: json_sha256(v) for k, v in parts.items()}


def _validator(recipe: Recipe, val_query: Sequence[Record], val_gallery: Sequence[Record]) -> Any:
    if not (val_query and val_gallery):
        return None

    def validate(net: nn.Module) -> dict[str, float]:
        q = embed_records(net, val_query, recipe, progress=False)
        g = embed_records(net, val_gallery, recipe, progress=False)
        result = evaluate_from_features(
            q.feats,
            g.feats,
            q.pids,
            g.pids,
            q.camids,
            g.camids,
            metric=recipe.evaluation.metric,
        )
        return {"R1": float(result.cmc[0]), "mAP": float(result.mAP), "mINP": float(result.mINP)}

    return validate


def train_from_records(
    fit_records: Sequence[Record],
    val_query: Sequence[Record],
    val_gallery: Sequence[Record],
    experiment: Experiment,
    *,
    run_id: str = "",
    progress: bool | None = None,
) -> TrainOutcome:
    """Train the experiment's model on ``fit_records`` (pids relabelled 0..N-1), validating on
    the held-out ``val_query`` / ``val_gallery`` identities for model selection."""
    recipe, where = experiment.recipe, experiment.where
    if not fit_records:
        raise ConfigError(f"{where}: the training split is empty")
    pids = [r.pid for r in fit_records]
    modality = [r.modality for r in fit_records]
    num_classes = max(pids) + 1
    if sorted(set(pids)) != list(range(num_classes)):
        raise ConfigError(f"{where}: training pids must be relabelled 0..N-1")
    cross = is_cross_modality(fit_records)
    check_against_data(experiment, pids, modality)
    model = build_model(
        recipe.model.name, num_classes=num_classes, options=recipe.model.options(), seed=recipe.seed
    )
    check_modalities(model, recipe.model.name, cross)
    size = recipe.input
    transforms = build_transforms_by_modality(
        recipe.augmentation, height=size.height, width=size.width, seed=recipe.seed
    )
    dataset = ManifestDataset(fit_records, transforms, seed=recipe.seed)
    # under torchrun every rank samples a disjoint share of each epoch's batches
    shard = {"num_replicas": get_world_size(), "rank": get_rank()}
    p, k = recipe.sampler.identities, recipe.sampler.k
    epoch = recipe.sampler.epoch
    if cross:
        sampler: Any = CrossModalitySampler(
            pids, modality, p=p, k=k, seed=recipe.seed, epoch=epoch, **shard
        )
    else:
        sampler = PKSampler(pids, p=p, k=k, seed=recipe.seed, epoch=epoch, **shard)
    workers = recipe.loader.num_workers
    loader = build_loader(
        dataset,
        batch_size=sampler.batch_size,
        sampler=sampler,
        num_workers=workers,
        seed=recipe.seed,
        persistent_workers=workers > 0,
    )
    criterion = build_criterion(
        [loss.model_dump() for loss in recipe.losses],
        context={
            "num_classes": num_classes,
            "feat_dims": feature_dims(model, size.height, size.width),
        },
    )
    f = recipe.fit
    result = fit(
        model,
        loader,
        criterion,
        epochs=f.epochs,
        optimizer=recipe.optimizer.spec(),
        scheduler=recipe.scheduler,
        device=f.device,
        precision=f.precision,
        channels_last=f.channels_last,
        compile=f.compile,
        grad_clip=f.grad_clip,
        checkpoint_dir=checkpoint_path(where, recipe.checkpoint_dir),
        resume=f.resume,
        seed=recipe.seed,
        validate=_validator(recipe, val_query, val_gallery),
        val_every=recipe.validation.every,
        select_metric=recipe.validation.metric,
        progress=(f.progress and get_rank() == 0) if progress is None else progress,
        fingerprint=training_fingerprint(experiment, fit_records, num_classes),
        on_mismatch=f.on_checkpoint_mismatch,
        deterministic=f.deterministic,
        lr_scaling=f.lr_scaling,
        on_epoch_end=_live_logger(experiment.live_dir),
    )
    use_best = recipe.validation.select == "best" and result.best_state_dict is not None
    state = result.best_state_dict if use_best else result.state_dict
    history = result.history
    spec = {
        "name": recipe.model.name,
        "num_classes": num_classes,
        "kwargs": recipe.model.options(),
        "cross_modality": cross,
        "feat_dim": int(getattr(model, "feat_dim", 0)),
        "input": size.model_dump(),
        "params": count_parameters(model),
        "seed": recipe.seed,
        "arch": experiment.arch,
        "recipe": experiment.recipe_name,
        "run_id": run_id,
        "weights_sha256": state_dict_sha256(state),
    }
    summary = {
        "run_id": run_id,
        "epochs": f.epochs,
        "seconds": float(history["time_s"].sum()) if "time_s" in history else None,
        "images_per_s": float(history["images_per_s"].mean())
        if "images_per_s" in history
        else None,
        # the training budget: every image the sampler fed, all epochs (resumed ones included)
        # and all ranks; images_per_s x time_s is that count per epoch
        "images_seen": round(float((history["images_per_s"] * history["time_s"]).sum()))
        if {"images_per_s", "time_s"} <= set(history.columns)
        else None,
        "selected_epoch": int(result.best_epoch) if use_best else f.epochs,
        "selected_by": f"validation {recipe.validation.metric}" if use_best else "last epoch",
        "best_validation": result.best_metric,
        "resumed_from_epoch": result.resumed_from,
        "train_images": len(fit_records),
        "train_ids": num_classes,
    }
    return TrainOutcome(state_dict=state, spec=spec, history=history, summary=summary)


def _live_logger(directory: str | None) -> Any:
    """Write the history so far as DVCLive metrics after every epoch (``io.live``)."""
    if not directory:
        return None
    from reid_pipeline.io.live import write_history

    return lambda history: write_history(directory, history)


def rebuild_model(
    spec: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor] | None
) -> nn.Module:
    """The model of ``spec`` with ``state_dict`` loaded (None: the untrained initial weights,
    identical to those training started from). Weights whose digest differs from the spec's
    ``weights_sha256`` are refused."""
    model = build_model(
        spec["name"],
        num_classes=int(spec["num_classes"]),
        options=spec.get("kwargs", {}),
        seed=int(spec.get("seed", 0)),
    )
    if state_dict is not None:
        expected = spec.get("weights_sha256")
        if expected and state_dict_sha256(state_dict) != expected:
            raise WeightsError(
                f"the weights of {spec.get('arch', spec['name'])} (model.safetensors) do not match "
                "the sha256 in model_spec.json: the file is damaged or belongs to another run; "
                "train again or restore both files"
            )
        missing, unexpected = model.load_state_dict(dict(state_dict), strict=False)
        if missing or unexpected:
            raise WeightsError(
                f"weights do not fit model {spec['name']!r}: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}"
            )
    model.eval()
    return model


def evaluate_embeddings(
    embeddings: Mapping[str, torch.Tensor],
    query: Sequence[Record],
    gallery: Sequence[Record],
    info: Mapping[str, Any],
    experiment: Experiment,
) -> Any:
    """The dataset's protocol (every setting) on query / gallery embeddings."""
    evaluation = experiment.recipe.evaluation
    result = evaluate_protocol(
        info["dataset"],
        embeddings["query_feats"],
        embeddings["gallery_feats"],
        list(query),
        list(gallery),
        dict(info),
        metric=evaluation.metric,
        rerank=evaluation.rerank,
        max_rank=evaluation.max_rank,
        map_max_rank=evaluation.map_max_rank,
        **experiment.protocol,
    )
    logger.info("%s on %s:\n%s", experiment.arch, info["dataset"], result.table())
    return result
