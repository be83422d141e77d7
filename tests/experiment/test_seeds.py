"""Mean and spread over seeds (``python -m reid_pipeline.experiment.seeds``): the summary, the
resume rule and the command line; the training runs themselves are the train pipelines'."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from reid_pipeline.experiment.seeds import (
    is_done,
    kept_results,
    main,
    render_seeds,
    run_digest,
    summarise_seeds,
)


def _doc(seed: int, r1: float, map_: float, *, dataset: str = "market1501", seen: int | None = 100):
    training = {} if seen is None else {"images_seen": seen}
    return {
        "dataset": dataset,
        "trained": {"R1": r1, "mAP": map_, "mINP": map_ / 2},
        "training": training,
        "seeds": {"seed": seed, "recipe": "cpu_synthetic", "digest": "x"},
    }


def test_summary_is_mean_min_max_in_percent() -> None:
    table = summarise_seeds(
        {
            "bot": [_doc(0, 0.70, 0.60), _doc(1, 0.74, 0.62), _doc(2, 0.72, 0.67)],
            "dimn": [_doc(0, 0.50, 0.40)],
        }
    )
    bot = table.set_index("architecture").loc["bot"]
    assert bot["seeds"] == [0, 1, 2]
    assert bot["R1_mean"] == pytest.approx(72.0)
    assert (bot["R1_min"], bot["R1_max"]) == pytest.approx((70.0, 74.0))
    assert bot["mAP_mean"] == pytest.approx(63.0)
    assert bot["mINP_max"] == pytest.approx(33.5)
    assert bot["images_seen"] == {0: 100, 1: 100, 2: 100}
    text = render_seeds(table)
    row = "| bot | market1501 | 0, 1, 2 | **72.0** (70.0-74.0) | **63.0** (60.0-67.0) |"
    assert f"{row} **31.5** (30.0-33.5) | 100 |" in text
    assert "market1501: equal budget, with each seed every architecture (bot, dimn) saw" in text


def test_budgets_are_compared_seed_by_seed() -> None:
    """Counts may differ between seeds (recipes with another ``validation.seed`` hold other
    identities out): shown as a range, compared between architectures of the same seed."""
    equal = summarise_seeds(
        {
            "bot": [_doc(0, 0.5, 0.4, seen=100), _doc(1, 0.5, 0.4, seen=90)],
            "pmm": [_doc(0, 0.5, 0.4, seen=100), _doc(1, 0.5, 0.4, seen=90)],
        }
    )
    text = render_seeds(equal)
    assert "| 90-100 |" in text
    assert "equal budget" in text
    unequal = summarise_seeds(
        {"bot": [_doc(1, 0.5, 0.4, seen=90)], "pmm": [_doc(1, 0.5, 0.4, seen=95)]}
    )
    assert "**unequal budgets** (seed 1: bot 90, pmm 95)" in render_seeds(unequal)
    missing = summarise_seeds({"bot": [_doc(0, 0.5, 0.4, seen=None), _doc(1, 0.5, 0.4)]})
    text = render_seeds(missing)
    assert "| 100 (not every run recorded it) |" in text
    assert "images seen not recorded for every run" in text


ROOT = Path(__file__).resolve().parents[2]


def _params(
    epochs: int = 14, *, preset: str = "default", metric: str = "cosine", **validation: int
) -> dict:
    """The project's own parameters (bot and dimn), with one value changed."""
    conf = ROOT / "conf" / "base"
    params = yaml.safe_load((conf / "parameters.yml").read_text())
    for arch in ("bot", "dimn"):
        params |= yaml.safe_load((conf / f"parameters_train_{arch}.yml").read_text())
    params["bot"]["cpu_synthetic"]["fit"]["epochs"] = epochs
    params["bot"]["cpu_synthetic"]["validation"] |= validation
    params["datasets"]["single_modality"]["synthetic"]["preset"] = preset
    params["protocols"]["market1501"]["metric"] = metric
    return params


def test_a_result_counts_only_for_what_it_was_trained_with(tmp_path: Path) -> None:
    """The recipe (its own seed aside), the dataset of its slot and the protocol options: a
    change to any of them trains again; a run is never reused for other settings."""
    params = _params()
    digest = run_digest(params, "bot", 1)
    seeded = _params()
    seeded["bot"]["cpu_synthetic"]["seed"] = 7  # the recipe's own seed is replaced by the run's
    assert digest == run_digest(seeded, "bot", 1)
    assert digest != run_digest(params, "bot", 2)
    changes = (_params(15), _params(preset="tiny"), _params(metric="euclidean"), _params(seed=1))
    for changed in changes:
        assert digest != run_digest(changed, "bot", 1)
    # the recipe as the run reads it: a default written out is the same recipe
    assert digest == run_digest(_params(seed=0), "bot", 1)
    path = tmp_path / "bot_seed1.json"
    assert not is_done(path, digest)  # missing
    path.write_text("{not json")
    assert not is_done(path, digest)  # damaged
    path.write_text(json.dumps({"seeds": {"digest": digest}}))
    assert is_done(path, digest)
    assert not is_done(path, run_digest(_params(15), "bot", 1))


def test_the_summary_holds_every_kept_run_of_the_current_recipes(tmp_path: Path) -> None:
    """Runs of earlier invocations count (another architecture, other seeds); a run of a recipe
    that has changed since, or of an architecture without parameters, does not."""
    params = _params()

    def keep(arch: str, seed: int, digest: str) -> None:
        doc = _doc(seed, 0.5 + seed / 100, 0.4)
        doc["seeds"]["digest"] = digest
        (tmp_path / f"{arch}_seed{seed}.json").write_text(json.dumps(doc))

    for seed in (2, 0, 1):
        keep("dimn", seed, run_digest(params, "dimn", seed))
    keep("bot", 0, run_digest(params, "bot", 0))
    keep("bot", 1, run_digest(_params(6), "bot", 1))  # trained before the recipe changed
    keep("tinynet", 0, "x")  # no parameters any more
    kept = kept_results(tmp_path, params)
    assert list(kept) == ["bot", "dimn"]
    assert [d["seeds"]["seed"] for d in kept["dimn"]] == [0, 1, 2]
    assert [d["seeds"]["seed"] for d in kept["bot"]] == [0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--archs", "resnet"], "unknown architecture"),
        (["--seeds", "1", "1"], "repeats a seed"),
    ],
)
def test_command_line_refuses_bad_arguments(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
