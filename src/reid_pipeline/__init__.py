"""reid_pipeline: Kedro + DVC pipelines for person re-identification.

The library (``data``, ``models``, ``losses``, ``engine``, ``evaluation``, ``viz``) never imports
Kedro; ``pipelines/`` holds the thin Kedro wiring over it.
"""

__version__ = "0.1.0"
