"""reid_pipeline: Kedro + DVC pipelines for person re-identification.

The library (``data``, ``models``, ``losses``, ``engine``, ``evaluation``, ``viz``) never imports
Kedro; ``pipelines/`` holds the thin Kedro wiring over it.
"""

import os

# albumentations otherwise asks PyPI for a newer release on every import (and in every worker).
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
