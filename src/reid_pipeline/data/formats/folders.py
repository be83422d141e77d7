"""Your own crops, one folder per identity (docs/custom_data.md).

Layout: ``<root>/{train,query,gallery}/<identity>/<image files>``; all three split folders are
required and each needs at least one image. ``root`` is that folder; the synthetic ``folders``
layout writes ``synthetic_folders/``, found under ``root`` as the benchmark folders are.

Identities: when every identity folder name (over the three splits) is a decimal number
(``0001``, ``17``), the number is the pid, so ``query/0001`` and ``gallery/0001`` are one person
and the pids in results match your folder names (``7`` and ``007`` together are refused).
Otherwise every distinct name is numbered ``0..N-1`` in sorted (string) order over the three
splits together, and ``info["identity_names"]`` maps pid -> name. Training pids are relabelled
``0..N-1`` as for every dataset.

Cameras come from the file name: a token ``c<N>`` or ``cam<N>`` (any case, N >= 1) at the start
of the stem or after a character that is not a letter or digit, and not followed by a digit:
``0001_c1s1_001051_00.jpg`` (Market-1501 style) -> camera 1, ``cam3_0042.png`` -> camera 3,
``frame12-C2.jpg`` -> camera 2; ``crop3.jpg`` and ``0001c1.jpg`` carry none. camid = N - 1
(0-based, as in the benchmarks). Every file MUST carry one: the evaluation removes a query's
same-identity gallery images from the same camera, and the validation identities held out of the
training split are matched across cameras the same way (data/holdout.py), so a guessed camera
would either remove every true match or count near-duplicate frames as matches. A file without
one is an error naming it; two different camera tokens in one name are refused as ambiguous.

Image files lying directly in a split folder, identity folders without images and folders nested
inside an identity folder are errors naming the path; non-image files (``Thumbs.db``) and hidden
files are ignored. Query images whose identity has no gallery folder are a warning with their
count (evaluation skips them).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from reid_pipeline.data.loaders import (
    is_image_name,
    list_images,
    list_subdirs,
    report_identity_overlap,
)
from reid_pipeline.data.records import DatasetFormatError, Modality, Record, Splits

SYNTHETIC_DIR = "synthetic_folders"
SPLITS = ("train", "query", "gallery")
CAMERA_TOKEN = re.compile(r"(?<![A-Za-z0-9])c(?:am)?(\d+)(?!\d)", re.IGNORECASE)
_EXAMPLE = "'0001_c1s1_001051_00.jpg' or 'cam3_0042.png'"


def find_folders_root(root: Path) -> Path:
    if not root.is_dir():
        raise DatasetFormatError(
            f"{root}: dataset root does not exist or is not a folder; expected a folder holding "
            "train/, query/ and gallery/"
        )
    for folder in (root, root / SYNTHETIC_DIR):
        if any((folder / split).is_dir() for split in SPLITS):
            for split in SPLITS:
                if not (folder / split).is_dir():
                    raise DatasetFormatError(
                        f"{folder / split}: missing folder; expected {folder}/train, query and "
                        "gallery, each holding one folder per identity"
                    )
            return folder
    raise DatasetFormatError(
        f"{root}: no train/, query/ or gallery/ folder; expected one folder per identity under "
        f"{root}/train, {root}/query and {root}/gallery"
    )


def camera_of(path: str) -> int | None:
    """The camera number ``N`` in ``c<N>`` / ``cam<N>`` of the file name, None without one."""
    stem = os.path.splitext(os.path.basename(path))[0]
    numbers = {int(m.group(1)) for m in CAMERA_TOKEN.finditer(stem)}
    if len(numbers) > 1:
        raise DatasetFormatError(
            f"{path}: file name has several camera tokens {sorted(numbers)}; expected one "
            f"c<N> or cam<N>, like {_EXAMPLE}"
        )
    if not numbers:
        return None
    number = numbers.pop()
    if number < 1:
        raise DatasetFormatError(
            f"{path}: camera {number} in the file name; cameras are numbered from 1 (c1 = the "
            "first camera), like Market-1501"
        )
    return number


def _identity_folders(split_dir: Path) -> list[str]:
    with os.scandir(split_dir) as it:
        stray = sorted(e.name for e in it if e.is_file() and is_image_name(e.name))
    if stray:
        raise DatasetFormatError(
            f"{split_dir / stray[0]}: image lies directly in {split_dir.name}/; expected one "
            f"folder per identity, e.g. {split_dir.name}/0001/{stray[0]}"
        )
    return list_subdirs(split_dir)


def _pid_mapping(names: set[str], dataset_dir: Path) -> tuple[dict[str, int], list[str] | None]:
    if all(name.isdigit() and name.isascii() for name in names):
        by_number: dict[int, str] = {}
        for name in sorted(names):
            other = by_number.setdefault(int(name), name)
            if other != name:
                raise DatasetFormatError(
                    f"{dataset_dir}: identity folders {other!r} and {name!r} both mean person "
                    f"{int(name)}; rename one so that each number is written once"
                )
        return {name: int(name) for name in names}, None
    ordered = sorted(names)
    return {name: i for i, name in enumerate(ordered)}, ordered


def load(root: Path) -> Splits:
    dataset_dir = find_folders_root(root)
    identities = {split: _identity_folders(dataset_dir / split) for split in SPLITS}
    mapping, names = _pid_mapping(
        {name for split in SPLITS for name in identities[split]}, dataset_dir
    )
    parts: dict[str, list[Record]] = {}
    for split in SPLITS:
        records = []
        for name in identities[split]:
            folder = dataset_dir / split / name
            nested = list_subdirs(folder)
            if nested:
                raise DatasetFormatError(
                    f"{folder / nested[0]}: folder inside an identity folder; expected the "
                    f"images directly in {split}/{name}/"
                )
            paths = list_images(folder)
            if not paths:
                raise DatasetFormatError(
                    f"{folder}: identity folder holds no image; expected image files "
                    "(.jpg, .jpeg, .png, .bmp) or remove the folder"
                )
            for path in paths:
                camera = camera_of(path)
                if camera is None:
                    raise DatasetFormatError(
                        f"{path}: no camera in the file name; expected c<N> or cam<N> like "
                        f"{_EXAMPLE} (evaluation and validation remove same-camera matches), "
                        "or use the manifest format with a camid column"
                    )
                records.append(Record(path, mapping[name], camera - 1, int(Modality.VISIBLE)))
        if not records:
            raise DatasetFormatError(
                f"{dataset_dir / split}: the {split} split is empty; expected at least one "
                "identity folder with images"
            )
        parts[split] = sorted(records)
    train, query, gallery = (parts[s] for s in SPLITS)
    counts = report_identity_overlap(train, query, gallery, source=dataset_dir)
    info: dict[str, object] = {
        "num_cameras": 1 + max(r.camid for part in (train, query, gallery) for r in part),
        **counts,
    }
    if names is not None:
        info["identity_names"] = names
    return Splits(
        name="folders", root=str(dataset_dir), train=train, query=query, gallery=gallery, info=info
    )
