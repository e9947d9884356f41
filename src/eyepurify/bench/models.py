"""What a benchmark asks for the models it does not get as files: a :class:`Trainer` ("train
or reuse": :class:`eyepurify.train.cache.TrainCache`, handed over by ``eyepurify bench``).
A benchmark never trains by itself; settings are plain dicts of the trainers' configs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from eyepurify.data.base import EyeDataset


class Trainer(Protocol):
    """Trained models by request, each (model file, reused?)."""

    def segmenter(self, name: str, settings: dict[str, Any], data: Sequence[EyeDataset]) -> tuple[Path, bool]: ...

    def purifier(self, name: str, settings: dict[str, Any], content: EyeDataset,
                 style: Sequence[str | Path]) -> tuple[Path, bool]: ...

    def refiner(self, name: str, settings: dict[str, Any], synthetic: np.ndarray,
                real: np.ndarray) -> tuple[Path, bool]: ...


#: (cache folder, progress: bars on stderr, None on a terminal) -> a Trainer
OpenTrainer = Callable[[Path, bool | None], Trainer]
