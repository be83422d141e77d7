"""Damaged image files: ``verify_images`` and the training decoder name them; a JPEG cut short
(which OpenCV decodes as a partly grey picture with only a libjpeg warning) included."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from reid_pipeline.data.image_check import image_problem, jpeg_cut_short
from reid_pipeline.data.loaders import verify_images
from reid_pipeline.data.records import Record
from reid_pipeline.data.torch_dataset import ManifestDataset, build_loader, read_image
from reid_pipeline.data.transforms import test_transform
from reid_pipeline.errors import DataError


def _noise_jpeg(path: Path) -> bytes:
    """A 128x64 JPEG of noise (large enough that a third of it still holds every header)."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (128, 64, 3), dtype=np.uint8)).save(
        buffer, format="JPEG", quality=90
    )
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


@pytest.fixture
def truncated_jpeg(tmp_path: Path) -> Path:
    data = _noise_jpeg(tmp_path / "whole.jpg")
    path = tmp_path / "0001_c1s1_000151_01.jpg"
    path.write_bytes(data[: len(data) // 3])
    return path


@pytest.fixture
def garbage_png(tmp_path: Path) -> Path:
    path = tmp_path / "0002_c2s1_000151_01.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return path


def test_the_truncated_jpeg_fools_the_usual_decoders(truncated_jpeg: Path) -> None:
    """The case the checks exist for: headers intact, OpenCV returns a full-size picture."""
    with Image.open(truncated_jpeg) as image:
        image.verify()  # the header check alone passes
    decoded = cv2.imread(str(truncated_jpeg))
    assert decoded is not None
    assert decoded.shape == (128, 64, 3)


def test_verify_images_names_the_truncated_jpeg_and_the_garbage_png(
    tmp_path: Path, truncated_jpeg: Path, garbage_png: Path
) -> None:
    whole = tmp_path / "whole.jpg"
    verify_images([str(whole)])  # a complete image passes
    with pytest.raises(DataError, match=rf"{truncated_jpeg}: damaged image"):
        verify_images([str(whole), str(truncated_jpeg)])
    with pytest.raises(DataError, match=rf"{garbage_png}: unreadable image"):
        verify_images([str(garbage_png), str(whole)])


def test_verify_images_option_of_load_dataset(tmp_path: Path, truncated_jpeg: Path) -> None:
    from tests.data.conftest import write_folders

    from reid_pipeline.data import load_dataset

    root = write_folders(tmp_path / "data")
    target = root / "gallery" / "0004" / "cam1_77.jpg"
    target.write_bytes(truncated_jpeg.read_bytes())
    load_dataset("folders", root)  # listing only
    with pytest.raises(DataError, match=rf"{target}: damaged image"):
        load_dataset("folders", root, verify_images=True)


def test_read_image_refuses_both_naming_the_path_and_the_option(
    truncated_jpeg: Path, garbage_png: Path
) -> None:
    for path in (truncated_jpeg, garbage_png):
        with pytest.raises(DataError, match=rf"{path.name}.*options: {{verify_images: true}}"):
            read_image(str(path))
    with pytest.raises(DataError, match=rf"{truncated_jpeg.name}' is damaged"):
        read_image(str(truncated_jpeg))


def test_training_loader_raises_instead_of_substituting(truncated_jpeg: Path) -> None:
    t = test_transform(32, 16)
    dataset = ManifestDataset([Record(str(truncated_jpeg), 0, 0, 0)], {0: t})
    with pytest.raises(DataError, match=truncated_jpeg.name):
        dataset[0]
    loader = build_loader(dataset, batch_size=1, num_workers=1)
    with pytest.raises(DataError, match=truncated_jpeg.name):  # across a worker process
        next(iter(loader))


def test_complete_jpegs_with_padding_or_trailing_bytes_are_accepted(tmp_path: Path) -> None:
    data = _noise_jpeg(tmp_path / "a.jpg")
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(data + b"\x00" * 10)
    trailing = tmp_path / "trailing.jpg"
    trailing.write_bytes(data + b"appended by some camera software" * 8)
    for path in (tmp_path / "a.jpg", padded, trailing):
        assert jpeg_cut_short(str(path)) is None, path
        assert image_problem(str(path)) is None, path
        assert read_image(str(path)).shape == (128, 64, 3)


def test_jpeg_check_ignores_other_formats(tmp_path: Path) -> None:
    png = tmp_path / "a.png"
    Image.new("RGB", (4, 8)).save(png)
    assert jpeg_cut_short(str(png)) is None


def test_truncation_is_found_even_when_pil_is_told_to_accept_it(
    truncated_jpeg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)  # as some libraries do
    assert "end-of-image marker" in jpeg_cut_short(str(truncated_jpeg))
    assert "damaged image" in image_problem(str(truncated_jpeg))
