"""``ensure_synthetic``: a generated dataset made with the requested options, never one made
with other options (stamp.py records them; docs/datasets.md)."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reid_pipeline.data.synthetic.options import resolve_options
from reid_pipeline.data.synthetic.stamp import _content, _differences, make_stamp, read_stamp
from reid_pipeline.data.synthetic.writer import generate_synthetic
from reid_pipeline.errors import ConfigError

logger = logging.getLogger(__name__)


def ensure_synthetic(
    root: str | os.PathLike[str], name: str, options: Mapping[str, Any] | None = None
) -> Path:
    """The synthetic dataset ``name`` (a layout of ``generate_synthetic``) under ``root``,
    generated with ``options`` (``generate_synthetic``'s keyword options); returns its folder.

    Generates it when the folder is missing. When the folder exists, its ``synthetic.json`` must
    record the same content options; otherwise (different options, or no record) a WARNING names
    the old and new options and the dataset is regenerated atomically: written into a temporary
    sibling folder, then swapped in with renames, so an interrupted regeneration leaves the old
    folder in place. Never reuses a folder made with other options. ``progress``, ``workers``
    and ``overwrite`` do not count as differences (they do not change the files).

    An unknown layout or option, or a bad option value, raises :class:`ConfigError` (a
    ``ValueError``) before anything is written.
    """
    requested = dict(options or {})
    requested.pop("overwrite", None)  # decided here
    accepted = [
        p.name
        for p in inspect.signature(generate_synthetic).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "overwrite"
    ]
    unknown = sorted(set(requested) - set(accepted))
    if unknown:
        raise ConfigError(
            f"unknown synthetic option(s) {unknown} for {name!r}; accepted: {sorted(accepted)}"
        )
    content = {k: v for k, v in requested.items() if k not in ("progress", "overwrite")}
    try:
        resolved = resolve_options(name, **content)  # validates every option before any work
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"synthetic {name!r} options: {exc}") from None
    stamp = make_stamp(resolved, requested)
    folder = Path(root) / resolved.folder
    if not (folder.exists() or folder.is_symlink()):
        logger.info(
            "%s is missing: generating the synthetic %s dataset (%s)", folder, name, requested
        )
        return generate_synthetic(root, name, **requested)
    old = read_stamp(folder)
    if _content(old) == _content(stamp):
        logger.info("%s: synthetic %s dataset made with the same options, reused", folder, name)
        return folder
    logger.warning(
        "%s was generated with options %s, but %s are requested (%s): regenerating it",
        folder,
        None if old is None else old.get("requested"),
        stamp["requested"],
        _differences(old, stamp),
    )
    return generate_synthetic(root, name, overwrite=True, **requested)
