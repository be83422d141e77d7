"""The papers' figures: Grad-CAM activation maps, t-SNE of the embeddings, DIMN's stripes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from tests.kedro.conftest import TINY_MODEL

from reid_pipeline.data.records import Record
from reid_pipeline.models import create_model, list_models
from reid_pipeline.models.layers.gradcam import grad_cam
from reid_pipeline.models.layers.parts import SPLITS, horizontal_parts, row_ranges
from reid_pipeline.viz.gradcam import (
    activation_maps,
    activation_maps_figure,
    identity_references,
    pick_queries,
)
from reid_pipeline.viz.stripes import declares_stripes, model_stripes, stripes_figure
from reid_pipeline.viz.tsne import plot_tsne, subsample, tsne_2d

SIZE = (96, 48)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


def _records(tmp_path: Path, pids: list[int], modality: int = 0) -> list[Record]:
    rng = np.random.default_rng(0)
    out = []
    for i, pid in enumerate(pids):
        path = tmp_path / f"{pid:04d}_{i}.jpg"
        cv2.imwrite(str(path), rng.integers(0, 255, (64, 32, 3), dtype=np.uint8))
        out.append(Record(str(path), pid, i % 2, modality))
    return out


def _bot() -> torch.nn.Module:
    return create_model("bot", num_classes=5, backbone="resnet18").eval()


def test_activation_maps_are_the_grad_cam_of_the_trunk_for_the_reference_score() -> None:
    model = _bot()
    images = torch.randn(3, 3, *SIZE)
    refs = torch.randn(3, model.feat_dim)
    got = activation_maps(model, images, None, refs)
    assert set(got.cams) == {"trunk"}
    assert got.erased is None
    # the same by hand: layer4's output, the projection score, Grad-CAM, upsampled, peak 1
    fmap = model.backbone(images)
    emb = model.head(fmap).bn_feat
    cam = grad_cam((emb * F.normalize(refs, dim=1)).sum(), fmap)
    up = F.interpolate(cam[:, None], size=SIZE, mode="bilinear", align_corners=False)[:, 0]
    up = up / up.flatten(1).amax(dim=1).clamp(min=1e-12)[:, None, None]
    torch.testing.assert_close(got.cams["trunk"], up.detach(), atol=1e-5, rtol=1e-4)
    assert got.cams["trunk"].amax() == 1.0  # not all maps empty
    assert got.cams["trunk"].shape == (3, *SIZE)
    assert all(p.grad is None for p in model.parameters())  # no parameter gradient written
    assert not model.training


def test_dimn_also_maps_the_erased_branch_and_finds_the_erased_window() -> None:
    model = create_model(
        "dimn", num_classes=5, backbone="resnet18", embed_dim=16, branch2_dim=16, saliency_dim=16
    ).eval()
    got = activation_maps(model, torch.randn(2, 3, *SIZE), None, torch.randn(2, model.feat_dim))
    assert set(got.cams) == {"trunk", "erased"}
    assert got.erased is not None
    h = got.erased.shape[1]  # the erased window: whole rows (erase_width 1), a third of them
    for b in range(2):
        rows = got.erased[b].all(dim=1)
        assert got.erased[b].any(dim=1).equal(rows)
        assert int(rows.sum()) == round(h / 3)


def test_a_model_without_a_resnet_trunk_uses_its_last_convolution() -> None:
    class SmallNet(torch.nn.Module):  # a new architecture's trunk, an in-place ReLU after it
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.relu = torch.nn.ReLU(inplace=True)

        def forward(self, images, modality=None):
            return self.relu(self.conv(images)).mean(dim=(2, 3))

    maps = activation_maps(SmallNet(), torch.randn(2, 3, *SIZE), None, torch.randn(2, 4))
    assert maps.cams["trunk"].shape == (2, *SIZE)
    assert float(maps.cams["trunk"].max()) == pytest.approx(1.0)

    class NoConv(torch.nn.Module):
        def forward(self, images, modality=None):
            return images.mean(dim=(2, 3))

    with pytest.raises(ValueError, match="has no convolution"):
        activation_maps(NoConv(), torch.randn(1, 3, *SIZE), None, torch.randn(1, 3))


def test_references_are_the_identity_mean_of_the_gallery_minus_its_mean() -> None:
    gallery = torch.tensor([[3.0, 0.0], [0.0, 2.0], [0.0, 5.0]])  # normalised: e1, e2, e2
    refs = identity_references([7, 9], gallery, torch.tensor([7, 8, 8]), torch.ones(2, 2))
    centre = torch.tensor([1 / 3, 2 / 3])
    want = torch.stack([torch.tensor([1.0, 0.0]) - centre, torch.ones(2) / 2**0.5 - centre])
    torch.testing.assert_close(refs, want)  # pid 9 has no gallery image: its own embedding
    one_id = identity_references([7], gallery[:1], torch.tensor([7]), torch.ones(1, 2))
    torch.testing.assert_close(one_id, torch.tensor([[1.0, 0.0]]))  # nothing to set apart from


def test_picks_distinct_identities_evenly_and_skips_junk() -> None:
    query = [Record("x", pid, 0) for pid in (0, -1, 1, 1, 2, 3, 3, 4, 5)]
    assert pick_queries(query, 3) == [2, 5, 8]
    assert pick_queries(query, 10) == [2, 4, 5, 7, 8]
    assert pick_queries(query, 2, benchmark=False)[0] == 0  # own data: pid 0 is a person


def test_activation_maps_figure_on_images(tmp_path: Path) -> None:
    model = _bot()
    query = _records(tmp_path, [1, 1, 2, 3])
    emb = {
        "query_feats": torch.randn(4, model.feat_dim),
        "gallery_feats": torch.randn(3, model.feat_dim),
        "gallery_pids": torch.tensor([1, 2, 2]),
    }
    fig = activation_maps_figure(model, query, emb, image_size=SIZE, title="t")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2 * 3  # image + trunk rows, three identities
    fig.savefig(tmp_path / "a.png")


def test_tsne_subsample_keeps_whole_identities_up_to_the_budget() -> None:
    pids = np.repeat(np.arange(50), 10)
    idx = subsample(pids, max_ids=20, max_points=1000, seed=0)
    assert len(np.unique(pids[idx])) == 20
    assert len(idx) == 200
    assert len(subsample(pids, max_ids=20, max_points=60, seed=0)) == 60


def test_tsne_separates_separated_identities() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 64)) * 10
    feats = np.concatenate([c + rng.normal(size=(20, 64)) for c in centres])
    xy = tsne_2d(feats, seed=0)
    groups = [xy[20 * i : 20 * (i + 1)] for i in range(3)]
    spread = max(float(np.linalg.norm(g - g.mean(0), axis=1).mean()) for g in groups)
    gaps = [np.linalg.norm(groups[i].mean(0) - groups[j].mean(0)) for i, j in ((0, 1), (1, 2))]
    assert min(gaps) > 2 * spread


def test_tsne_figure_marks_the_modalities() -> None:
    rng = np.random.default_rng(1)
    pids = np.repeat(np.arange(1, 6), 6)
    fig = plot_tsne(rng.normal(size=(30, 16)), pids, np.tile([0, 1], 15), title="t")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["visible", "infrared"]
    assert "5 identities" in fig.axes[0].get_title()


def test_only_models_with_granularities_declare_stripes() -> None:
    assert declares_stripes("dimn")
    assert not any(declares_stripes(n) for n in ("bot", "agw", "pmm", "fienet", "wrimnet"))


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(("height", "n"), [(24, 5), (24, 6), (16, 3), (6, 4)])
def test_row_ranges_are_the_rows_part_pooling_reads(height: int, n: int, split: str) -> None:
    """The figure draws ``row_ranges``; the model pools ``horizontal_parts``: both must agree
    (each part's gradient is non-zero exactly on its rows)."""
    x = torch.rand(1, 1, height, 3, requires_grad=True)
    parts = horizontal_parts(x, n, pool="avg", split=split)
    for i, (start, end) in enumerate(row_ranges(height, n, split)):
        (grad,) = torch.autograd.grad(parts[0, 0, i], x, retain_graph=True)
        rows = grad[0, 0].abs().sum(dim=1).nonzero().flatten().tolist()
        assert rows == list(range(start, end)), (i, rows)


def test_dimn_stripes_partition_the_rows(tmp_path: Path) -> None:
    model = create_model(
        "dimn", num_classes=5, backbone="resnet18", embed_dim=16, branch2_dim=16, saliency_dim=16
    ).eval()
    stripes = model_stripes(model, 24)
    assert sorted(stripes) == [2, 3, 4, 5, 6]
    for rows in stripes.values():  # the paper's equal segments: every row in exactly one
        covered = [r for start, end in rows for r in range(start, end)]
        assert covered == list(range(24))
    fig = stripes_figure(model, _records(tmp_path, [1, 2, 3]), image_size=SIZE, title="t")
    assert len(fig.axes) == 2 * 5  # two persons x five granularities
    assert "of 6" in fig._suptitle.get_text()  # 96-pixel images: a 6-row map


def test_a_model_without_stripes_is_refused() -> None:
    with pytest.raises(ValueError, match="no horizontal stripes"):
        model_stripes(_bot(), 16)


@pytest.mark.parametrize("name", list_models())
def test_every_model_gets_activation_maps(name: str) -> None:
    options = {"backbone": "resnet18", **TINY_MODEL.get(name, {})}
    model = create_model(name, num_classes=4, **options).eval()
    cross = bool(getattr(model, "cross_modality", False))
    modality = torch.tensor([0, 1]) if cross else None
    got = activation_maps(model, torch.randn(2, 3, *SIZE), modality, torch.randn(2, model.feat_dim))
    assert got.cams["trunk"].shape == (2, *SIZE)
    assert torch.isfinite(got.cams["trunk"]).all()
    assert float(got.cams["trunk"].amax()) == 1.0
