"""Labelled samples in memory for every trainer, protocol and benchmark: ``load_labelled``.

One road from any dataset path (``open_dataset``) or opened dataset to samples resized by
the :mod:`eyepurify.imaging` policy (images area/linear, label maps nearest), with the same
rules everywhere: unreadable samples are skipped and listed (``bad``), samples without what
is needed (label maps by default) are counted (``skipped``) or labelled by ``relabel``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from eyepurify.data.base import BadFile, EyeDataset
from eyepurify.errors import DataError
from eyepurify.imaging import resize_pair
from eyepurify.progress import progress_bar
from eyepurify.sample import EyeSample


class ArrayDataset(EyeDataset):
    """In-memory labelled images as an :class:`EyeDataset` (nothing written to disk)."""

    format_name = "arrays"

    def __init__(self, images: Sequence[np.ndarray], labels: Sequence[np.ndarray | None], names: Sequence[str]) -> None:
        super().__init__()
        self.images, self.labels, self.names = list(images), list(labels), list(names)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> EyeSample:
        return EyeSample(image=self.images[index], labels=self.labels[index], source=self.names[index])

    def source_of(self, index: int) -> str:
        return self.names[index]


@dataclass
class Labelled:
    """What :func:`load_labelled` read: ``samples`` (image and labels at the size asked for),
    ``where`` each came from ((index into ``datasets``, sample index)), the bad files met, and
    how many samples lacked what was needed."""

    samples: list[EyeSample] = field(default_factory=list)
    where: list[tuple[int, int]] = field(default_factory=list)
    datasets: list[EyeDataset] = field(default_factory=list)
    bad: list[BadFile] = field(default_factory=list)
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.samples)

    def images(self) -> np.ndarray:
        """N×H×W×3 uint8 (all of one size)."""
        return np.stack([s.image for s in self.samples])

    def labels(self) -> np.ndarray:
        """N×H×W uint8 label maps (every sample has one)."""
        return np.stack([s.labels for s in self.samples])  # type: ignore[misc]

    def sources(self) -> list[str]:
        return [s.source for s in self.samples]


def has_labels(s: EyeSample) -> bool:
    return s.labels is not None


def _indices(ds: EyeDataset, limit: int | None, seed: int | None) -> Iterator[int]:
    n = len(ds)
    if seed is not None and limit is not None and limit < n:
        yield from (int(i) for i in np.random.default_rng(seed).permutation(n))
    else:
        yield from range(n)


def load_labelled(
    sources: Sequence[str | Path | EyeDataset],
    size: tuple[int, int] | None = None,
    *,
    need: Callable[[EyeSample], bool] = has_labels,
    relabel: Callable[[EyeSample], EyeSample] | None = None,
    limit: int | None = None,
    seed: int | None = None,
    progress: bool | None = False,
    open_dataset: Callable[[Path], EyeDataset] | None = None,
) -> Labelled:
    """The samples of ``sources`` (paths opened by ``open_dataset``, default
    :func:`eyepurify.data.open_dataset`, or datasets) that have what ``need`` asks (label
    maps by default), resized to ``size`` (H, W) (None: as they are).

    ``relabel``: gives a sample that lacks it one that has it (e.g. labels predicted by a
    segmenter; already at ``size``); without it such samples are counted in ``skipped``.
    ``limit``: stop after that many samples in all; with ``seed`` they are drawn in a seeded
    random order of each dataset (else in order). ``progress``: a bar per dataset (None: on a
    terminal). Unreadable samples are skipped and listed in ``bad``.
    """
    if open_dataset is None:
        from eyepurify.data.detect import open_dataset as default_open

        open_dataset = default_open
    out = Labelled()
    for d in sources:
        ds = d if isinstance(d, EyeDataset) else open_dataset(Path(d))
        k = len(out.datasets)
        out.datasets.append(ds)
        name = ds.format_name if isinstance(d, EyeDataset) else Path(d).name
        for i in progress_bar(_indices(ds, limit, seed), total=len(ds), desc=f"load {name}",
                              disable=None if progress is None else not progress):
            if limit is not None and len(out.samples) >= limit:
                break
            try:
                s = ds.get_checked(i)
            except DataError as e:
                out.bad.append(BadFile(e.path, str(e)))
                continue
            if not need(s):
                if relabel is None:
                    out.skipped += 1
                    continue
                s = relabel(s)
            elif size is not None:
                image, labels = resize_pair(s.image, s.labels, size)
                s = replace(s, image=image, labels=labels)
            out.samples.append(s)
            out.where.append((k, i))
    return out
