"""Rich progress bars for training epochs and extraction (disabled = zero output)."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def make_progress(*, enabled: bool) -> Progress:
    """``description | bar | done/total | info | elapsed | remaining``; ``info`` is a free text
    field (loss, lr, images/s) updated by the caller."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        refresh_per_second=4,
    )


def add_task(progress: Progress, description: str, total: int | None) -> TaskID:
    return progress.add_task(description, total=total, info="")
