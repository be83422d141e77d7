"""Argument checks shared by the models and their blocks.

Each returns the checked value and raises ``ValueError`` naming the option as a recipe spells it
(``neck_feat must be one of ('after', 'before'), got 'middle'``); the recipe checks prefix the
block (``bot.cpu_synthetic.model``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def check_choice(key: str, value: T, allowed: Sequence[Any]) -> T:
    """``value`` must be one of ``allowed``."""
    if isinstance(value, list | dict | set) or value not in allowed:
        raise ValueError(f"{key} must be one of {tuple(allowed)}, got {value!r}")
    return value


def check_bool(key: str, value: Any) -> bool:
    """``value`` must be ``True`` or ``False`` (not 0 / 1 / "yes")."""
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {value!r}")
    return value


def is_int(value: Any) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_positive_int(key: str, value: Any) -> int:
    """``value`` must be an int >= 1 (a bool is refused)."""
    if not is_int(value) or value < 1:
        raise ValueError(f"{key} must be a positive int, got {value!r}")
    return int(value)


def check_fraction(key: str, value: Any) -> float:
    """``value`` must be a number in ``(0, 1]``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value <= 1.0:
        raise ValueError(f"{key} must be a number in (0, 1], got {value!r}")
    return float(value)


def check_int_list(
    key: str,
    value: Any,
    *,
    allowed: Sequence[int] | None = None,
    minimum: int = 1,
    distinct: bool = False,
    non_empty: bool = True,
) -> list[int]:
    """``value`` must be a list of ints (each >= ``minimum``, or among ``allowed``)."""
    ok = not isinstance(value, str | bytes) and isinstance(value, Sequence)
    items = list(value) if ok else []
    ok = ok and all(is_int(v) for v in items)
    ok = ok and all((v in allowed) if allowed is not None else v >= minimum for v in items)
    ok = ok and (not non_empty or bool(items)) and (not distinct or len(set(items)) == len(items))
    if not ok:
        what = f"among {tuple(allowed)}" if allowed is not None else f">= {minimum}"
        extra = (", distinct" if distinct else "") + (", at least one" if non_empty else "")
        raise ValueError(f"{key} must be a list of ints {what}{extra}; got {value!r}")
    return [int(v) for v in items]


def check_names(key: str, value: Any, allowed: Sequence[str]) -> list[str]:
    """``value`` must be a non-empty list of distinct names from ``allowed``."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        got = f"a string ({value!r})" if isinstance(value, str) else repr(value)
        raise ValueError(f"{key} must be a list of names from {tuple(allowed)}, got {got}")
    items = list(value)
    if not items or len(set(items)) != len(items) or any(v not in allowed for v in items):
        raise ValueError(f"{key} must be distinct names from {tuple(allowed)}, got {items!r}")
    return items
