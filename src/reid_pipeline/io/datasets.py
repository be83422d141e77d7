"""Kedro datasets that write atomically.

- ``SafetensorsDataset``: a ``dict[str, Tensor]`` (model weights, embeddings) in a safetensors
  file: loading can never run code, unlike pickle-based torch files.
- ``AtomicDataset``: wraps any file-based Kedro dataset (parquet, CSV, JSON, PNG...) so a save
  writes a temporary sibling file and renames it over the target: an interrupted run never leaves
  a truncated output behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from kedro.io import AbstractDataset, DatasetError
from safetensors.torch import load_file, save_file


def _fsync_replace(tmp: Path, final: Path) -> None:
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)


def _tmp_sibling(path: Path) -> Path:
    # keep the suffix: some datasets (matplotlib) infer the format from it
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")


class SafetensorsDataset(AbstractDataset[dict[str, torch.Tensor], dict[str, torch.Tensor]]):
    """A dict of tensors in one ``.safetensors`` file, saved atomically.

    ``metadata`` (string -> string) is stored in the file header; values that are not strings are
    JSON-encoded.
    """

    def __init__(self, *, filepath: str, metadata: dict[str, Any] | None = None) -> None:
        self._filepath = Path(filepath)
        self._metadata = {
            k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()
        }

    def load(self) -> dict[str, torch.Tensor]:
        if not self._filepath.is_file():
            raise DatasetError(f"weights file {self._filepath} does not exist")
        return load_file(str(self._filepath))

    def save(self, data: dict[str, torch.Tensor]) -> None:
        if not isinstance(data, dict) or not all(
            isinstance(v, torch.Tensor) for v in data.values()
        ):
            raise DatasetError(
                f"SafetensorsDataset({self._filepath}) saves a dict[str, Tensor], got "
                f"{type(data).__name__}"
            )
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_sibling(self._filepath)
        tensors = {k: v.detach().cpu().contiguous() for k, v in data.items()}
        save_file(tensors, str(tmp), metadata=self._metadata or None)
        _fsync_replace(tmp, self._filepath)

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class AtomicDataset(AbstractDataset[Any, Any]):
    """Any file dataset, saved through a temporary sibling file and an atomic rename.

    ``dataset`` is the wrapped dataset's type (``"pandas.ParquetDataset"``) or its full config
    (``{type: json.JSONDataset, save_args: {indent: 2}}``); ``filepath`` is the final path.
    """

    def __init__(self, *, dataset: str | dict[str, Any], filepath: str) -> None:
        config = {"type": dataset} if isinstance(dataset, str) else dict(dataset)
        if "filepath" in config:
            raise DatasetError("AtomicDataset: give 'filepath' next to 'dataset', not inside it")
        self._config = config
        self._filepath = Path(filepath)
        self._final = self._build(self._filepath)

    def _build(self, path: Path) -> AbstractDataset:
        return AbstractDataset.from_config(
            f"atomic:{path.name}", {**self._config, "filepath": str(path)}
        )

    def load(self) -> Any:
        return self._final.load()

    def save(self, data: Any) -> None:
        self._filepath.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_sibling(self._filepath)
        try:
            self._build(tmp).save(data)
            _fsync_replace(tmp, self._filepath)
        finally:
            tmp.unlink(missing_ok=True)

    def _exists(self) -> bool:
        return self._filepath.is_file()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "dataset": self._config.get("type")}


class DVCLiveHistoryDataset(AbstractDataset[pd.DataFrame, pd.DataFrame]):
    """A training history (one row per epoch) kept in DVCLive's files under ``path``
    (``reid_pipeline.io.live``): the same files DVCLive updates while a run trains, so
    ``dvc exp show`` / ``dvc plots show`` and the project's figure read one source."""

    def __init__(self, *, path: str) -> None:
        self._path = Path(path)

    def load(self) -> pd.DataFrame:
        from reid_pipeline.io.live import read_history

        try:
            return read_history(self._path)
        except FileNotFoundError as exc:
            raise DatasetError(str(exc)) from None

    def save(self, data: pd.DataFrame) -> None:
        from reid_pipeline.io.live import write_history

        if not isinstance(data, pd.DataFrame) or "epoch" not in data:
            raise DatasetError(
                f"DVCLiveHistoryDataset({self._path}) saves a DataFrame with 'epoch'"
            )
        write_history(self._path, data)

    def _exists(self) -> bool:
        return (self._path / "plots" / "metrics").is_dir()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
