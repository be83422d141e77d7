"""reid_pipeline: Kedro + DVC pipelines for person re-identification.

The library (``data``, ``models``, ``losses``, ``engine``, ``evaluation``, ``viz``) never imports
Kedro; ``pipelines/`` holds the thin Kedro wiring over it.
"""

import os
import warnings

# albumentations otherwise asks PyPI for a newer release on every import (and in every worker).
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

# dvclive depends on the deprecated `pynvml` shim, which torch.cuda imports when present: its
# deprecation notice says nothing about this project and would open every run's output.
warnings.filterwarnings(
    "ignore", message="The pynvml package is deprecated", category=FutureWarning
)

__version__ = "0.1.0"
