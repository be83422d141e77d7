"""Argument checks shared by the custom transforms: one clear ``ValueError`` naming the option."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np


def check_probability(owner: str, name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not 0.0 <= float(value) <= 1.0
    ):
        raise ValueError(f"{owner}: {name} must be a probability in [0, 1], got {value!r}")
    return float(value)


def check_range(
    owner: str,
    name: str,
    value: Any,
    *,
    low: float,
    high: float,
    low_open: bool = False,
) -> tuple[float, float]:
    """A ``(min, max)`` pair with ``low <(=) min <= max <= high``."""
    ok = (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)
    )
    if ok:
        lo, hi = float(value[0]), float(value[1])
        ok = (lo > low if low_open else lo >= low) and lo <= hi <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise ValueError(
            f"{owner}: {name} must be a pair (min, max) with min <= max inside "
            f"{bracket}{low}, {high}], got {value!r}"
        )
    return lo, hi


def check_positive_int(owner: str, name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_fill(
    owner: str, name: str, value: Any, *, allow_random: bool = False
) -> float | tuple[float, ...] | str:
    """A pixel value (number or one number per channel), or ``"random"`` when allowed."""
    if allow_random and value == "random":
        return "random"
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) > 0
        and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)
    ):
        return tuple(float(v) for v in value)
    expected = "a number, a list of per-channel numbers" + (" or 'random'" if allow_random else "")
    raise ValueError(f"{owner}: {name} must be {expected}, got {value!r}")


def fill_value(fill: float | tuple[float, ...], image: np.ndarray, owner: str) -> Any:
    """``fill`` as the image's dtype (rounded and clipped for uint8), checked against channels."""
    channels = image.shape[2] if image.ndim == 3 else 1
    if isinstance(fill, tuple) and len(fill) != channels:
        raise ValueError(
            f"{owner}: fill has {len(fill)} values but the image has {channels} channel(s)"
        )
    value = np.asarray(fill, dtype=np.float64)
    if image.dtype == np.uint8:
        value = np.clip(np.rint(value), 0, 255)
    return value.astype(image.dtype)
