"""Detecting damaged image files: the check behind the ``verify_images`` load option and the
guard in the training decoder (docs/datasets.md, "Damaged images").

OpenCV and torchvision hand libjpeg a JPEG cut short and get back a picture whose missing part is
grey; the only trace is a libjpeg warning ("Premature end of JPEG file") that names no file.
Two checks close that gap:

- :func:`jpeg_cut_short`: cheap (reads the first 2 and last 64 bytes). A complete JPEG ends with
  its end-of-image marker ``FF D9`` (possibly followed by zero / whitespace padding). When the
  marker is not there the file is decoded strictly with PIL to decide, so a valid file with
  trailing bytes after its marker is not refused.
- :func:`image_problem`: the full check of ``verify_images``: PIL verifies the structure (PNG
  chunk checksums, headers) and then decodes every pixel, refusing truncated data.
"""

from __future__ import annotations

import os

_JPEG_START = b"\xff\xd8"
_JPEG_END = b"\xff\xd9"
_PADDING = b"\x00\r\n\t "
_TAIL = 64


def _strict_decode_error(path: str) -> str | None:
    """Decode every pixel with PIL, truncated data refused; the error text or None."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
    except Exception as exc:  # any decoder failure means the file is damaged
        return f"{type(exc).__name__}: {exc}"
    return None


def _tail(handle) -> bytes:
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - _TAIL))
    return handle.read().rstrip(_PADDING)


def jpeg_cut_short(path: str) -> str | None:
    """For a JPEG file (by its first bytes): why it is damaged when its data stops before the
    end-of-image marker, else None. Non-JPEG files return None. One open, 66 bytes read for a
    complete file."""
    with open(path, "rb") as handle:
        if handle.read(2) != _JPEG_START or _tail(handle).endswith(_JPEG_END):
            return None
    from PIL import ImageFile

    if ImageFile.LOAD_TRUNCATED_IMAGES:  # another library relaxed PIL process-wide
        return "the JPEG data stops before its end-of-image marker"
    return _strict_decode_error(path)


def image_problem(path: str) -> str | None:
    """One line naming ``path`` and what is wrong with it, or None for a good image."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.verify()
            width, height = image.size
        if width < 1 or height < 1:
            return f"{path}: image has size {width}x{height}; expected a non-empty image"
    except Exception as exc:  # any decoder failure means the file is unreadable
        return f"{path}: unreadable image ({type(exc).__name__}: {exc}); expected a valid image"
    problem = _strict_decode_error(path) or jpeg_cut_short(path)
    if problem is not None:
        return f"{path}: damaged image, its data is cut short or corrupt ({problem})"
    return None
