"""Draw docs/architecture.png: the package's layers and who imports whom.

    python scripts/draw_architecture.py docs/architecture.png

The boxes (layers and their place) are written here; the arrows are read from the code: every
``import`` / ``from ... import`` of ``src/reid_pipeline`` (wherever it stands in a module) that
goes from one layer to another is one arrow, so the picture never shows an import that does not
exist. ``errors.py`` is imported by nearly every layer and drawn as a bar without arrows. A
module in no box stops the script, naming it (give it a box).
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "reid_pipeline"

KEDRO, LIBRARY, ENTRY = "#f6d7a7", "#cfe3f5", "#e2e2e2"

#: layer -> (x centre, y centre, width, height, colour, text); a layer is a subpackage or a
#: top-level module of the package
BOXES: dict[str, tuple[float, float, float, float, str, str]] = {
    "__main__": (1.5, 9.2, 2.6, 1.0, ENTRY, "__main__.py\n`reid-pipeline` command"),
    "settings": (5.0, 9.2, 2.4, 1.0, KEDRO, "settings.py\nKedro settings"),
    "hooks": (8.2, 9.2, 2.6, 1.0, KEDRO, "hooks.py\nrun ids, locks,\n--from-nodes"),
    "runlock": (11.4, 9.2, 2.4, 1.0, LIBRARY, "runlock.py\none run per arch"),
    "cli": (14.3, 9.2, 2.6, 1.0, ENTRY, "cli.py\n`kedro run` wrapper"),
    "pipeline_registry": (
        4.6,
        7.5,
        3.0,
        1.0,
        KEDRO,
        "pipeline_registry.py\ntrain_<arch> per model",
    ),
    "pipelines": (
        9.0,
        7.5,
        5.0,
        1.0,
        KEDRO,
        "pipelines/  (Kedro, thin nodes)\n"
        "generate_synthetic, ingest, train,\nreport, embed, search",
    ),
    "ddp": (14.3, 7.5, 2.6, 1.0, KEDRO, "ddp.py\ntorchrun entry"),
    "inference": (2.0, 5.5, 3.0, 1.0, LIBRARY, "inference/\nembed, index, search,\nexport"),
    "convert": (5.8, 5.5, 2.2, 1.0, LIBRARY, "convert/\ntoolbox weights"),
    "experiment": (
        9.3,
        5.5,
        3.4,
        1.0,
        LIBRARY,
        "experiment/\nrecipe, checks, run,\nsummary, report",
    ),
    "viz": (14.2, 5.5, 2.6, 1.0, LIBRARY, "viz/\nall figures"),
    "io": (2.0, 3.4, 2.8, 1.1, KEDRO, "io/\natomic Kedro datasets,\ndigests"),
    "engine": (6.4, 3.4, 3.0, 1.1, LIBRARY, "engine/\nfit, checkpoints,\ndevices, DDP"),
    "evaluation": (11.2, 3.4, 3.0, 1.1, LIBRARY, "evaluation/\nmetrics, protocols/,\nre-ranking"),
    "data": (2.4, 1.2, 3.2, 1.0, LIBRARY, "data/\nformats, synthetic,\nsamplers, transforms"),
    "losses": (6.4, 1.2, 3.0, 1.0, LIBRARY, "losses/\nCE, triplet, WRT,\ncenter, CMKIC, IGCL"),
    "models": (13.0, 1.2, 3.0, 1.0, LIBRARY, "models/\none file per arch,\nlayers/"),
}
#: imported by (nearly) everyone: a bar, no arrows
BAR = "errors"
BAR_TEXT = "errors.py - ReidError family (ConfigError, DataError, ...): any layer may import it"


def _known(name: str, modules: set[str]) -> str | None:
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def module_imports(src: Path = SRC, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (every import statement, relative ones
    resolved)."""
    files = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        files[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    modules = set(files)
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in files.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {m for a in node.names if (m := _known(a.name, modules))}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, *([node.module] if node.module else [])])
                else:
                    base = node.module or ""
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    target = sub if sub in modules else _known(base, modules)
                    if target:
                        found.add(target)
        graph[name] = found - {name}
    return graph


def layer_of(module: str) -> str | None:
    """``reid_pipeline.models.bot`` -> ``models``; the package's ``__init__`` -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def layer_edges(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    edges = set()
    for source, targets in graph.items():
        for target in targets:
            a, b = layer_of(source), layer_of(target)
            if a and b and a != b and BAR not in (a, b):
                edges.add((a, b))
    return edges


def reachable(edges: set[tuple[str, str]], start: str) -> set[str]:
    """Every layer ``start`` reaches along ``edges`` (itself excluded)."""
    seen: set[str] = set()
    todo = [b for a, b in edges if a == start]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo += [b for a, b in edges if a == node]
    return seen


def reduce_edges(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The transitive reduction: an edge A -> B is left out when B is reached from A through
    another layer, so A -> B is still allowed (reachable) but not drawn twice. The import graph
    has no cycle (tests/test_import_graph.py), so the reduction is unique."""
    return {
        (a, b)
        for a, b in edges
        if not any(b in reachable(edges, c) for x, c in edges if x == a and c != b)
    }


def draw(out: Path) -> set[tuple[str, str]]:
    graph = module_imports()
    layers = {layer_of(m) for m in graph} - {None, BAR}
    missing = sorted(layers - set(BOXES))
    if missing:
        raise SystemExit(f"layers without a box in {__file__}: {missing} (add them to BOXES)")
    edges = reduce_edges(layer_edges(graph))

    fig, ax = plt.subplots(figsize=(16, 11))
    ax.set_xlim(0, 16)
    ax.set_ylim(-1.0, 10.5)
    ax.axis("off")
    patches = {}
    for name, (x, y, w, h, colour, text) in BOXES.items():
        patch = FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.12",
            facecolor=colour,
            edgecolor="#444444",
            linewidth=1.2,
            zorder=3,
        )
        ax.add_patch(patch)
        patches[name] = patch
        ax.text(x, y, text, ha="center", va="center", fontsize=9.5, zorder=4)
    ax.add_patch(
        FancyBboxPatch(
            (0.3, -0.45),
            15.4,
            0.5,
            boxstyle="round,pad=0.02",
            facecolor="#f3c6c6",
            edgecolor="#444444",
            zorder=3,
        )
    )
    ax.text(8, -0.2, BAR_TEXT, ha="center", va="center", fontsize=9.5, zorder=4)

    for a, b in sorted(edges):
        xa, ya = BOXES[a][:2]
        xb, yb = BOXES[b][:2]
        rad = 0.0
        ax.annotate(
            "",
            xy=(xb, yb),
            xytext=(xa, ya),
            arrowprops={
                "arrowstyle": "-|>",
                "color": "#1f4e79",
                "alpha": 0.55,
                "linewidth": 1.1,
                "mutation_scale": 13,
                "patchA": patches[a],
                "patchB": patches[b],
                "shrinkA": 2,
                "shrinkB": 2,
                "connectionstyle": f"arc3,rad={rad}",
            },
            zorder=2,
        )
    legend = [
        (KEDRO, "imports Kedro: pipelines/, io/ and the project glue only"),
        (LIBRARY, "Kedro-free library"),
        (ENTRY, "command-line entry points"),
    ]
    for i, (colour, text) in enumerate(legend):
        ax.add_patch(
            FancyBboxPatch(
                (0.3 + i * 5.4, 10.2), 0.35, 0.22, boxstyle="square,pad=0", facecolor=colour
            )
        )
        ax.text(0.75 + i * 5.4, 10.31, text, va="center", fontsize=9)
    ax.text(
        8.0,
        -0.8,
        "A may import B when the arrows lead from A to B, directly or through other layers "
        "(arrows read from the code's imports; no import goes against them)",
        ha="center",
        va="center",
        fontsize=9.5,
        color="#1f4e79",
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return edges


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path("docs/architecture.png"))
    edges = draw(parser.parse_args().out)
    print(f"{len(edges)} layer imports drawn")


if __name__ == "__main__":
    main()
