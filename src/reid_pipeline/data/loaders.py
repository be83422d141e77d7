"""``load_dataset(name, root, **options)``: the dispatcher over the seven real ReID formats, plus
the parsing and validation helpers the format modules share.

Each format lives in ``reid_pipeline.data.formats.<name>`` (one short file with the dataset's
reference, statistics and file-name pattern, torchreid-style; ``manifest`` and ``folders`` read
your own crops, docs/custom_data.md) and exposes
``load(root, **keyword_only_options) -> Splits`` returning *original* pids. This module adds what
is common to all of them: option checking, train-pid relabelling, the shared ``info`` keys and the
optional image verification. Conventions (docs/datasets.md): records are ``(path, pid, camid,
modality)`` with absolute paths, 0-based camids, query / gallery keep the dataset's own pids.

Every layout problem raises one :class:`DatasetFormatError` naming the offending path (list file
and line number where there is one) and what was expected; bad options raise ``ValueError``.
Listing uses ``os.scandir`` and sorts, so the output is deterministic and fast on the real sizes.
Files whose extension is not an image (``Thumbs.db``, ``.DS_Store``, ``desktop.ini``, ...) and
hidden files (``._0001.jpg`` macOS resource forks) are ignored silently.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import numbers
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

from reid_pipeline.data.image_check import image_problem
from reid_pipeline.data.records import DatasetFormatError, Modality, Record, Splits, relabel

__all__ = [
    "IMAGE_EXTENSIONS",
    "DirIndex",
    "ListEntry",
    "dataset_names",
    "find_dataset_dir",
    "is_image_name",
    "list_images",
    "list_subdirs",
    "load_dataset",
    "load_market_style",
    "parse_integer",
    "read_id_list",
    "read_list_file",
    "report_identity_overlap",
    "require_dir",
    "require_file",
    "require_records",
    "verify_images",
]

# name -> module defining ``load``. Adding a format = one file + one line here.
_FORMATS: dict[str, str] = {
    "market1501": "reid_pipeline.data.formats.market1501",
    "dukemtmc": "reid_pipeline.data.formats.dukemtmc",
    "cuhk03": "reid_pipeline.data.formats.cuhk03",
    "msmt17": "reid_pipeline.data.formats.msmt17",
    "sysu_mm01": "reid_pipeline.data.formats.sysu_mm01",
    "regdb": "reid_pipeline.data.formats.regdb",
    "llcm": "reid_pipeline.data.formats.llcm",
    # your own data (docs/custom_data.md)
    "manifest": "reid_pipeline.data.formats.manifest",
    "folders": "reid_pipeline.data.formats.folders",
}

logger = logging.getLogger(__name__)

_COMMON_OPTIONS: dict[str, bool] = {"verify_images": False, "relabel": True}

_INTEGER = re.compile(r"^[-+]?\d+$")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp"})


def dataset_names() -> list[str]:
    """The names ``load_dataset`` accepts."""
    return sorted(_FORMATS)


def load_dataset(name: str, root: str | os.PathLike[str], **options: Any) -> Splits:
    """Parse and validate one dataset download; return its train / query / gallery records.

    ``root`` is the folder that contains the dataset's own folder (``data/01_raw`` holding
    ``Market-1501-v15.09.15/``) or that folder itself. Common options: ``verify_images=False``
    (open and verify every image header; an unreadable file raises naming it) and ``relabel=True``
    (training pids -> ``0..N-1`` in ascending order of the original pid; for visible-infrared data
    one person keeps one label in both modalities). Format options: ``cuhk03`` ``variant``,
    ``msmt17`` ``version`` / ``combine_val``, ``regdb`` ``trial``, ``llcm`` ``test_source``.
    Your own data: ``manifest`` (a CSV / Parquet file) and ``folders`` (one folder per identity);
    ``root`` then names the manifest or the folder holding ``train/ query/ gallery/``. Every
    format and layout is described in docs/datasets.md.
    """
    if name not in _FORMATS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {dataset_names()}")
    loader = importlib.import_module(_FORMATS[name]).load
    format_options = [
        p.name
        for p in inspect.signature(loader).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]
    unknown = sorted(set(options) - set(format_options) - set(_COMMON_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for dataset {name!r}; accepted options: "
            f"{sorted([*format_options, *_COMMON_OPTIONS])}"
        )
    common = {key: options.pop(key, default) for key, default in _COMMON_OPTIONS.items()}
    for key, value in common.items():
        if not isinstance(value, bool):
            raise ValueError(f"option {key!r} must be True or False, got {value!r}")
    if not isinstance(root, str | os.PathLike):
        raise ValueError(f"root must be a path (str or os.PathLike), got {type(root).__name__}")

    splits = loader(Path(os.path.abspath(os.fspath(root))), **options)
    for which in ("train", "query", "gallery"):
        require_records(splits.split(which), split=which, source=Path(splits.root))
    if common["relabel"]:
        splits.train = relabel(splits.train)
    splits.info = {
        "dataset": name,
        "dataset_dir": splits.root,
        "num_train_pids": len({r.pid for r in splits.train}),
        "num_train_images": len(splits.train),
        "num_query_images": len(splits.query),
        "num_gallery_images": len(splits.gallery),
        "relabel": common["relabel"],
        **splits.info,
    }
    if common["verify_images"]:
        verify_images(r.path for part in (splits.train, splits.query, splits.gallery) for r in part)
    return splits


# --------------------------------------------------------------------------- folders and files


def find_dataset_dir(root: Path, *, dirname: str, markers: Sequence[str]) -> Path:
    """``root/<dirname>`` if it exists, else ``root`` itself when it is the dataset folder
    (named ``dirname`` or holding one of ``markers``); otherwise one clear error."""
    root = Path(os.path.abspath(os.fspath(root)))
    if not root.is_dir():
        raise DatasetFormatError(
            f"{root}: dataset root does not exist or is not a folder; expected the folder that "
            f"contains {dirname}/ (or {dirname}/ itself)"
        )
    if (root / dirname).is_dir():
        return root / dirname
    if root.name == dirname or any((root / marker).exists() for marker in markers):
        return root
    raise DatasetFormatError(
        f"{root / dirname}: dataset folder not found; expected {root}/{dirname}/ containing "
        f"{list(markers)} (or pass that folder itself as root)"
    )


def require_dir(path: Path, *, expected: str) -> Path:
    if not path.is_dir():
        raise DatasetFormatError(f"{path}: missing folder; expected {expected}")
    return path


def require_file(path: Path, *, expected: str) -> Path:
    if not path.is_file():
        raise DatasetFormatError(f"{path}: missing file; expected {expected}")
    return path


def is_image_name(name: str) -> bool:
    """An image file name we read: a known extension (any case) and not a hidden file."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def list_images(folder: Path | str) -> list[str]:
    """Absolute paths of the image files directly in ``folder``, sorted by name."""
    folder = os.path.abspath(os.fspath(folder))
    try:
        with os.scandir(folder) as it:
            names = [e.name for e in it if is_image_name(e.name) and e.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        raise DatasetFormatError(f"{folder}: missing folder; expected a folder of images") from None
    except PermissionError:
        raise DatasetFormatError(f"{folder}: folder not readable (permission denied)") from None
    return [os.path.join(folder, n) for n in sorted(names)]


def list_subdirs(folder: Path | str) -> list[str]:
    """Names of the sub-folders of ``folder`` (hidden ones skipped), sorted."""
    folder = os.fspath(folder)
    try:
        with os.scandir(folder) as it:
            return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        raise DatasetFormatError(f"{folder}: missing folder") from None
    except PermissionError:
        raise DatasetFormatError(f"{folder}: folder not readable (permission denied)") from None


class DirIndex:
    """Answers "does this file exist?" with one ``scandir`` per folder, not one ``stat`` per
    file: list files name tens of thousands of images in a few hundred folders."""

    def __init__(self) -> None:
        self._names: dict[str, frozenset[str]] = {}

    def exists(self, path: str) -> bool:
        parent, name = os.path.split(path)
        names = self._names.get(parent)
        if names is None:
            try:
                with os.scandir(parent) as it:
                    names = frozenset(e.name for e in it if e.is_file())
            except (FileNotFoundError, NotADirectoryError):
                names = frozenset()
            self._names[parent] = names
        return name in names


def require_records(records: Sequence[Record], *, split: str, source: Path | str) -> None:
    if not records:
        raise DatasetFormatError(
            f"{source}: the {split} split is empty; expected at least one image"
        )


# --------------------------------------------------------------------------- text files


class ListEntry(NamedTuple):
    """One line of an image list file: ``<relative path> <integer label>``."""

    line: int
    relpath: str
    label: int


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DatasetFormatError(f"{path}: missing file") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise DatasetFormatError(f"{path}: cannot read as UTF-8 text ({exc})") from None


def read_list_file(path: Path, *, example: str) -> list[ListEntry]:
    """Parse a list file of ``<relative image path> <integer label>`` lines (blank lines and
    surrounding whitespace ignored). ``example`` is a valid line, quoted in error messages."""
    require_file(path, expected=f"an image list with lines like {example!r}")
    entries: list[ListEntry] = []
    for number, raw in enumerate(_read_text(path).splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        fields = line.split()
        relpath = fields[0].replace("\\", "/")
        valid = len(fields) == 2 and _INTEGER.match(fields[1]) is not None
        if not valid or relpath.startswith("/") or ".." in relpath.split("/"):
            raise DatasetFormatError(
                f"{path}, line {number}: cannot parse {line!r}; expected '<relative image path> "
                f"<integer label>' like {example!r}"
            )
        entries.append(ListEntry(number, relpath, int(fields[1])))
    return entries


def read_id_list(path: Path) -> list[int]:
    """Parse an id file such as SYSU-MM01's ``exp/train_id.txt``: integers separated by commas
    and / or whitespace (trailing commas, blank lines and newlines tolerated). Duplicates raise."""
    require_file(path, expected="a list of comma-separated integer ids, e.g. '1,2,4,5'")
    ids: list[int] = []
    for token in re.split(r"[,\s]+", _read_text(path)):
        if not token:
            continue
        try:
            ids.append(int(token))
        except ValueError:
            raise DatasetFormatError(
                f"{path}: cannot parse id {token!r}; expected comma-separated integers"
            ) from None
    if not ids:
        raise DatasetFormatError(f"{path}: no ids; expected comma-separated integers")
    duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
    if duplicates:
        raise DatasetFormatError(f"{path}: id(s) {duplicates} listed more than once")
    return ids


def check_label_mapping(entries: Iterable[tuple[ListEntry, int]], *, path: Path) -> None:
    """Each label of a list file must name one person, and each person carry one label.

    ``entries`` pairs every list entry with the pid read from its path."""
    pid_of: dict[int, tuple[int, int]] = {}
    label_of: dict[int, tuple[int, int]] = {}
    for entry, pid in entries:
        seen_pid, line = pid_of.setdefault(entry.label, (pid, entry.line))
        if seen_pid != pid:
            raise DatasetFormatError(
                f"{path}, line {entry.line}: label {entry.label} is used for person {pid}, but "
                f"line {line} uses it for person {seen_pid}; expected one label per person"
            )
        seen_label, line = label_of.setdefault(pid, (entry.label, entry.line))
        if seen_label != entry.label:
            raise DatasetFormatError(
                f"{path}, line {entry.line}: person {pid} has label {entry.label}, but line "
                f"{line} gives it label {seen_label}; expected one label per person"
            )


def resolve_entry(dataset_dir: Path, entry: ListEntry, *, list_path: Path, index: DirIndex) -> str:
    """Absolute path of a list entry; raises naming the list file and line when it is missing
    or not an image."""
    path = os.path.join(dataset_dir, *entry.relpath.split("/"))
    if not is_image_name(os.path.basename(path)):
        raise DatasetFormatError(
            f"{list_path}, line {entry.line}: {entry.relpath!r} is not an image file; expected "
            f"one of {sorted(IMAGE_EXTENSIONS)}"
        )
    if not index.exists(path):
        raise DatasetFormatError(
            f"{list_path}, line {entry.line}: listed file {path} does not exist"
        )
    return path


def check_unique_paths(records: Sequence[Record], *, source: Path) -> None:
    seen: set[str] = set()
    for record in records:
        if record.path in seen:
            raise DatasetFormatError(f"{source}: {record.path} is listed more than once")
        seen.add(record.path)


# --------------------------------------------------------------------------- own data


def parse_integer(value: Any) -> int | None:
    """``value`` as an int when it is one (an integer, a float with no fraction such as a Parquet
    column widened by a missing value, or a decimal string); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return int(number) if number.is_integer() else None
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        return int(value.strip())
    return None


def report_identity_overlap(
    train: Sequence[Record], query: Sequence[Record], gallery: Sequence[Record], *, source: Path
) -> dict[str, int]:
    """Warnings for what evaluation would otherwise count silently: queries whose identity has
    no gallery image (the protocols skip them) and identities shared by train and test. Returns
    the counts for ``Splits.info``."""
    gallery_ids = {r.pid for r in gallery}
    absent = [r for r in query if r.pid not in gallery_ids]
    if absent:
        logger.warning(
            "%s: %d of %d query images (%d identities) have no gallery image of their identity; "
            "evaluation skips them (skipped: identity_not_in_gallery)",
            source,
            len(absent),
            len(query),
            len({r.pid for r in absent}),
        )
    shared = {r.pid for r in train} & {r.pid for part in (query, gallery) for r in part}
    if shared:
        logger.warning(
            "%s: %d identities appear in train and in query / gallery; the evaluation then "
            "measures identities seen in training (benchmarks keep them disjoint)",
            source,
            len(shared),
        )
    return {
        "num_query_without_gallery_identity": len(absent),
        "num_identities_in_train_and_test": len(shared),
    }


# --------------------------------------------------------------------------- Market-style folders

# docs/datasets.md's ``([-\d]+)_c(\d)``, anchored, with the sign allowed only in front.
_MARKET_NAME = re.compile(r"^(-?\d+)_c(\d)")


def _parse_market_folder(
    folder: Path, *, num_cameras: int, max_pid: int | None, allow_distractors: bool
) -> list[Record]:
    records = []
    for path in list_images(folder):
        name = os.path.basename(path)
        match = _MARKET_NAME.match(name)
        if not match:
            raise DatasetFormatError(
                f"{path}: file name does not parse; expected '<pid>_c<camera>...' like "
                f"'0001_c1s1_001051_00.jpg' (pattern {_MARKET_NAME.pattern!r})"
            )
        pid = int(match.group(1))
        if pid == -1:  # junk boxes: dropped everywhere
            continue
        if pid < 0 or (max_pid is not None and pid > max_pid):
            raise DatasetFormatError(
                f"{path}: person id {pid} out of range; expected -1 (junk) or 0..{max_pid}"
                if max_pid is not None
                else f"{path}: person id {pid} out of range; expected -1 (junk) or >= 0"
            )
        if pid == 0 and not allow_distractors:
            raise DatasetFormatError(
                f"{path}: distractor id 0 in {folder.name}/; expected distractors only in the "
                "gallery (bounding_box_test)"
            )
        camera = int(match.group(2))
        if not 1 <= camera <= num_cameras:
            raise DatasetFormatError(
                f"{path}: camera {camera} out of range; expected c1..c{num_cameras}"
            )
        records.append(Record(path, pid, camera - 1, int(Modality.VISIBLE)))
    return records


def load_market_style(
    dataset_dir: Path, *, num_cameras: int, max_pid: int | None
) -> tuple[list[Record], list[Record], list[Record]]:
    """``bounding_box_train`` / ``query`` / ``bounding_box_test`` folders with Market-style names
    (Market-1501, DukeMTMC-reID, CUHK03-NP): pid -1 dropped, pid 0 kept in the gallery only."""
    parts = []
    for sub, allow_distractors in (
        ("bounding_box_train", False),
        ("query", False),
        ("bounding_box_test", True),
    ):
        folder = require_dir(dataset_dir / sub, expected=f"the {sub}/ folder of images")
        records = _parse_market_folder(
            folder, num_cameras=num_cameras, max_pid=max_pid, allow_distractors=allow_distractors
        )
        require_records(records, split=sub, source=folder)
        parts.append(records)
    return parts[0], parts[1], parts[2]


# --------------------------------------------------------------------------- image verification


def _check_image(path: str) -> str | None:
    return image_problem(path)


def verify_images(paths: Iterable[str], *, workers: int = 4) -> None:
    """Open every image, verify its structure (``PIL.Image.verify``) and decode all its pixels;
    raise :class:`DatasetFormatError` naming the first damaged file, in input order.

    Catches empty, non-image and truncated files, a JPEG cut short after its header included
    (which OpenCV and torchvision would decode as a partly grey image): see
    :mod:`reid_pipeline.data.image_check`."""
    paths = list(paths)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        for problem in pool.map(_check_image, paths):
            if problem is not None:
                raise DatasetFormatError(problem)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
