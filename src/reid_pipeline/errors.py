"""Known user errors: a bad parameter, a bad dataset, a corrupt checkpoint or weights file, a full
disk, a run already in progress. Each carries one short message naming the file or key and what
to do; the command line prints that message alone (``REID_TRACEBACK=1`` shows the traceback).
Anything else is a bug and keeps its traceback."""

from __future__ import annotations


class ReidError(Exception):
    """Base of the errors the command line reports as one line, without a traceback."""


class ConfigError(ReidError, ValueError):
    """A parameter is missing or wrong; the message names the key as written
    (``dimn.cpu_synthetic.sampler.batch_size``)."""


class DataError(ReidError, ValueError):
    """A dataset file or folder is missing or unreadable; the message names the path."""


class CheckpointError(ReidError):
    """A checkpoint cannot be read or does not belong to this run's settings."""


class WeightsError(ReidError):
    """A weights file does not match the digest recorded beside it, or cannot be read."""


class RunLockedError(ReidError):
    """Another run is writing the same outputs."""


class DiskFullError(ReidError, OSError):
    """The disk filled up while writing; the previous file at that path is intact."""
