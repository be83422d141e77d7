"""The registry finds model modules itself: a new file is a new architecture, a broken one warns."""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from reid_pipeline.models import create_model, list_models, model_options, registry


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A copy of the registry's tables, so a test's registrations (and modules) do not leak."""
    list_models()  # discover the real package first
    monkeypatch.setattr(registry, "_BUILDERS", dict(registry._BUILDERS))
    monkeypatch.setattr(registry, "_FAILED", {})
    yield
    for mod in [m for m in sys.modules if m.startswith(PKG)]:
        del sys.modules[mod]


def _package(root: Path, name: str, files: dict[str, str]) -> str:
    pkg = root / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for fname, text in files.items():
        path = pkg / fname
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return name


PKG = "tmp_models_pkg"
GOOD = """
    from torch import nn
    from reid_pipeline.models import ReidModel, register_model

    @register_model("tmp_tiny")
    class Tiny(ReidModel):
        def __init__(self, *, num_classes: int, width: int = 4) -> None:
            super().__init__()
            self.num_classes, self.feat_dim = num_classes, width
            self.fc = nn.Linear(3, width)
"""


def test_a_dropped_in_module_is_discovered_and_a_broken_one_only_warns(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fresh_registry: None,
) -> None:
    name = _package(
        tmp_path,
        PKG,
        {
            "tiny.py": GOOD,
            "broken.py": "import not_a_module_anywhere_xyz\n",
            "_private.py": "raise RuntimeError('a private module must not be imported')\n",
            "base.py": "raise RuntimeError('base is not a model module')\n",
            "registry.py": "raise RuntimeError('registry is not a model module')\n",
            "layers/__init__.py": "raise RuntimeError('layers is not a model module')\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with caplog.at_level(logging.WARNING, logger=registry.__name__):
        imported = registry.discover_models(name)
    assert imported == [f"{name}.tiny"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"{name}.broken" in warnings[0]
    assert "not_a_module_anywhere_xyz" in warnings[0]
    # the new architecture is usable through the ordinary entry points
    assert "tmp_tiny" in list_models()
    assert model_options("tmp_tiny") == {"width"}
    model = create_model("tmp_tiny", num_classes=3, width=6)
    assert model.feat_dim == 6
    # the real architectures are still there, and an unknown name names the broken module
    assert {"bot", "agw"} <= set(list_models())
    with pytest.raises(ValueError, match=rf"unknown model 'nope'.*{name}\.broken failed"):
        create_model("nope", num_classes=3)


def test_the_package_modules_are_discovered_without_a_table() -> None:
    assert not hasattr(registry, "_MODULES")
    files = Path(registry.__file__).parent.glob("*.py")
    modules = {p.stem for p in files} - registry.NOT_MODEL_MODULES - {"__init__"}
    assert modules == set(list_models())  # one model per file, named after it


def test_a_second_model_under_a_taken_name_is_refused(fresh_registry: None) -> None:
    with pytest.raises(ValueError, match="'bot' is already registered"):

        @registry.register_model("bot")
        class Other:
            pass


def test_unknown_options_are_named() -> None:
    with pytest.raises(ValueError, match=r"model 'bot': unexpected keyword argument 'depth'"):
        create_model("bot", num_classes=3, depth=3)
    assert "neck_feat" in model_options("bot")
    assert "num_classes" not in model_options("bot")
