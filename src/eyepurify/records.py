"""Dataclass records as plain JSON-ready dicts: one ``to_dict`` for every config that is
written into a model file, a run folder or a benchmark result."""

from __future__ import annotations

import dataclasses
from typing import Any


def plain(value: Any) -> Any:
    """``value`` with tuples turned into lists and dicts and lists copied, recursively."""
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


class AsDict:
    """Mixin for dataclasses: ``to_dict()`` = their fields as a JSON-ready dict (:func:`plain`)."""

    def to_dict(self) -> dict[str, Any]:
        return plain(dataclasses.asdict(self))  # type: ignore[call-overload]
