"""``reid-pipeline`` / ``python -m reid_pipeline``: with no subcommand (or kedro run options
only) it runs the project like ``kedro run``; ``run``, ``embed``, ``index``, ``search`` and
``export`` are the subcommands (``reid-pipeline --help``; docs/inference.md)."""

from __future__ import annotations

import sys
from typing import Any


def main(*args: str, **kwargs: Any) -> Any:
    from reid_pipeline.inference.cli import main as cli_main

    return cli_main(list(args) if args else None)


if __name__ == "__main__":
    sys.exit(main())
