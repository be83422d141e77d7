"""DVC tests run ``dvc`` and ``git`` for real, in throw-away git repositories under tmp_path.

``clone_project`` makes a fresh clone of the project's working-tree state (every tracked file as
it is on disk now, plus dvc.yaml; commit-independent, no data), with the venv's ``kedro`` and
``dvc`` first on PATH as after ``source .venv/bin/activate``.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def tool_env() -> dict[str, str]:
    """The environment of an activated venv, without telemetry or analytics, with a git
    identity (experiments are commits)."""
    env = dict(os.environ)
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(VENV_BIN.parent),
        KEDRO_DISABLE_TELEMETRY="true",
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="reid tests",
        GIT_AUTHOR_EMAIL="tests@reid.invalid",
        GIT_COMMITTER_NAME="reid tests",
        GIT_COMMITTER_EMAIL="tests@reid.invalid",
        NO_ALBUMENTATIONS_UPDATE="1",
        MPLBACKEND="Agg",
        COLUMNS="400",  # wide enough that `dvc metrics show` never elides a column
    )
    env.pop("PYTHONPATH", None)
    return env


def run(
    args: Sequence[str | os.PathLike[str]], cwd: Path, *, timeout: float = 300, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command; with ``ok`` a non-zero exit fails the test with the command's output."""
    done = subprocess.run(
        [os.fspath(a) for a in args],
        cwd=cwd,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if ok and done.returncode != 0:
        pytest.fail(
            f"`{' '.join(map(str, args))}` exited {done.returncode}\n"
            f"--- stdout (tail)\n{done.stdout[-6000:]}\n--- stderr (tail)\n{done.stderr[-6000:]}"
        )
    return done


def dvc(*args: str, cwd: Path, timeout: float = 300, ok: bool = True) -> str:
    """``dvc ARGS`` in ``cwd``; stdout (+ stderr) as text."""
    done = run([VENV_BIN / "dvc", *args], cwd, timeout=timeout, ok=ok)
    return done.stdout + done.stderr


def git(*args: str, cwd: Path) -> str:
    return run(["git", *args], cwd).stdout


def project_files() -> list[str]:
    """The project's tracked files that exist in the working tree, plus dvc.yaml."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    files = {f for f in listed.split("\0") if f and (ROOT / f).is_file()}
    files.add("dvc.yaml")
    return sorted(files)


def clone_project(dest: Path, *, files: Iterable[str] | None = None) -> Path:
    """A git repository at ``dest`` holding the project's files, committed once."""
    dest.mkdir(parents=True)
    for rel in files if files is not None else project_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    git("init", "-q", "-b", "main", cwd=dest)
    git("add", "-A", cwd=dest)
    git("commit", "-q", "-m", "project snapshot", cwd=dest)
    return dest


def assert_same_bytes(expected: Path, actual: Path) -> int:
    """``actual`` holds exactly the files of ``expected`` (a file or a folder), byte for byte;
    returns the number of files compared."""
    if expected.is_file():
        assert actual.is_file(), f"{actual} is missing"
        assert filecmp.cmp(expected, actual, shallow=False), f"{actual} differs from {expected}"
        return 1
    want = sorted(p.relative_to(expected) for p in expected.rglob("*") if p.is_file())
    have = sorted(p.relative_to(actual) for p in actual.rglob("*") if p.is_file())
    assert have == want, f"{actual}: other files than {expected}"
    for rel in want:
        assert filecmp.cmp(expected / rel, actual / rel, shallow=False), f"{actual / rel} differs"
    return len(want)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def dump_yaml(data: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def train_list(spec: dict[str, Any]) -> list[str]:
    """The ``foreach`` list of dvc.yaml's ``train`` stage: the architectures DVC runs."""
    return list(spec["stages"]["train"]["foreach"])


def restrict_to(dvc_yaml: Path, archs: Sequence[str]) -> None:
    """Keep only ``archs`` in the train foreach (a subset keeps the test short)."""
    spec = load_yaml(dvc_yaml)
    spec["stages"]["train"]["foreach"] = [a for a in train_list(spec) if a in archs]
    dump_yaml(spec, dvc_yaml)


def vars_files(spec: dict[str, Any]) -> list[str]:
    """The files dvc.yaml's ``vars`` read (``FILE`` or ``FILE:KEYS``)."""
    return sorted(
        {entry.split(":", 1)[0] for entry in spec.get("vars", []) if isinstance(entry, str)}
    )


def resolve_stages(
    dest: Path, *, spec: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """dvc.yaml's stages as DVC's own parser resolves them (``foreach`` expanded to
    ``train@<arch>``, ``vars`` and ``${item}`` interpolated), in a DVC repository at ``dest``
    holding dvc.yaml and the files its ``vars`` read. ``overrides``: ``{FILE: {dotted.key:
    value}}`` applied to those copies first (as ``dvc exp run -S`` would)."""
    from dvc.parsing import DataResolver
    from dvc.repo import Repo

    spec = load_yaml(ROOT / "dvc.yaml") if spec is None else spec
    dest.mkdir(parents=True, exist_ok=True)
    for rel in vars_files(spec):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    for rel, values in (overrides or {}).items():
        data = load_yaml(dest / rel)
        for dotted, value in values.items():
            *head, last = dotted.split(".")
            node = data
            for part in head:
                node = node[part]
            node[last] = value
        dump_yaml(data, dest / rel)
    dump_yaml(spec, dest / "dvc.yaml")
    repo = Repo.init(os.fspath(dest), no_scm=True, force=True)
    try:
        return DataResolver(repo, repo.root_dir, spec).resolve()["stages"]
    finally:
        repo.close()
