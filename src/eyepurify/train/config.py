"""JSON round trip of the run configs that hold dataset paths (``data``) and a size (``size``)."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TypeVar

from eyepurify.records import AsDict

C = TypeVar("C", bound="RunConfig")


class RunConfig(AsDict):
    """Mixin for frozen dataclasses with ``data: tuple[str, ...]`` and ``size: (H, W)``:
    ``to_dict`` gives JSON-ready lists, ``from_dict`` refuses unknown keys and restores tuples."""

    config_name: ClassVar[str] = "run"

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})  # type: ignore[arg-type]
        if unknown:
            raise ValueError(f"unknown {cls.config_name} config keys {unknown}")
        d = dict(d)
        if "data" in d:
            d["data"] = tuple(str(p) for p in d["data"])
        if "size" in d:
            d["size"] = tuple(int(v) for v in d["size"])
        return cls(**d)
