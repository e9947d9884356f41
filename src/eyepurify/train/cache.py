"""Train or reuse: a folder of trained models, each kept under a key of its config and a
content hash of its data (:func:`content_hash`: the pixels and label maps it was trained on,
never file names or paths), so the same request reuses the model and any change of data or
settings trains a new one. Benchmarks ask for the models they lack through it
(:class:`TrainCache` is what ``eyepurify bench`` hands them); they never train by themselves.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eyepurify.data.base import EyeDataset
from eyepurify.errors import EyepurifyError
from eyepurify.io import write_image

MODEL = "model.safetensors"


def _update(h: Any, a: np.ndarray | None) -> None:
    if a is None:
        h.update(b"none;")
        return
    a = np.ascontiguousarray(a)
    h.update(f"{a.dtype.str}{a.shape};".encode())
    h.update(a.tobytes())


def content_hash(data: Iterable[EyeDataset | np.ndarray | str | Path]) -> str:
    """Hex SHA-256 of what ``data`` holds, in order: every readable sample of a dataset (image
    and label map), an array's bytes, a dataset path's samples. Two different image sets never
    share it (unlike sums of pixels); renaming or moving files keeps it."""
    from eyepurify.data import open_dataset

    h = hashlib.sha256()
    for d in data:
        if isinstance(d, np.ndarray):
            _update(h, d)
            continue
        ds = d if isinstance(d, EyeDataset) else open_dataset(Path(d))
        h.update(f"dataset {len(ds)};".encode())
        for _, s in ds.iter_valid():
            _update(h, s.image)
            _update(h, s.labels)
    return h.hexdigest()


def cache_key(kind: str, config: dict[str, object], data: dict[str, str]) -> str:
    """Short hash of a request: the model kind, its config (data paths left out) and the content hashes."""
    blob = json.dumps({"kind": kind, "config": config, "data": data}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _write_labelled(folder: Path, ds: EyeDataset) -> Path:
    """A dataset's samples as ``folder/images`` + ``folder/masks`` PNGs (what trainers read)."""
    for i, (_, s) in enumerate(ds.iter_valid()):
        write_image(folder / "images" / f"c{i:05d}.png", s.image)
        if s.labels is not None:
            write_image(folder / "masks" / f"c{i:05d}.png", s.labels)
    return folder


class TrainCache:
    """Trained models under ``folder``, trained on first request (``progress``: bars on
    stderr; None: on a terminal). Each method returns (model file, reused?)."""

    def __init__(self, folder: str | Path, progress: bool | None = None) -> None:
        self.folder, self.progress = Path(folder), progress

    def _run(self, prefix: str, name: str, key: str, model: str = MODEL) -> tuple[Path, Path, bool]:
        run = self.folder / f"{prefix}_{name}_{key}"
        if (run / model).is_file():
            return run, run / model, True
        shutil.rmtree(run, ignore_errors=True)  # an interrupted earlier run
        return run, run / model, False

    def segmenter(self, name: str, settings: dict[str, object], data: Sequence[EyeDataset]) -> tuple[Path, bool]:
        """A segmenter trained with :class:`~eyepurify.train.segmenter.SegmenterConfig` ``settings``
        (its ``data`` left out) on the samples of ``data``."""
        from eyepurify.train.segmenter import SegmenterConfig, train

        cfg = SegmenterConfig.from_dict({**settings, "data": ()})
        key = cache_key("segmenter", cfg.to_dict(), {"data": content_hash(data)})
        run, model, reused = self._run("seg", name, key)
        if reused:
            return model, True
        print(f"training segmenter {name} → {run}", file=sys.stderr)
        result = train(cfg, run, datasets=list(data), progress=self.progress)
        if result.interrupted:
            raise EyepurifyError(f"{run}: segmenter training interrupted; run the benchmark again")
        return model, False

    def purifier(self, name: str, settings: dict[str, object], content: EyeDataset,
                 style: Sequence[str | Path]) -> tuple[Path, bool]:
        """A purifier trained with :class:`~eyepurify.train.purifier.PurifierTrainConfig`
        ``settings`` on ``content`` (written to a temp folder when it must be trained) towards
        the style folders ``style``. Its sample grids are removed (they may show real photos)."""
        from eyepurify.train.purifier import PurifierTrainConfig, train_purifier

        cfg = PurifierTrainConfig.from_dict({**settings, "content": ("content",), "style": ("style",)})
        key = cache_key("purifier", cfg.to_dict(), {"content": content_hash([content]), "style": content_hash(style)})
        run, model, reused = self._run("pur", name, key)
        if reused:
            return model, True
        print(f"training purifier {name} → {run}", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="eyepurify-content-") as tmp:
            folder = _write_labelled(Path(tmp), content)
            cfg = PurifierTrainConfig.from_dict({**cfg.to_dict(), "content": (str(folder),),
                                                 "style": tuple(str(s) for s in style)})
            out = train_purifier(cfg, run, progress=bool(self.progress if self.progress is not None else sys.stderr.isatty()))
        shutil.rmtree(run / "samples", ignore_errors=True)
        return out, False

    def refiner(self, name: str, settings: dict[str, object], synthetic: np.ndarray, real: np.ndarray) -> tuple[Path, bool]:
        """A SimGAN refiner trained with :class:`~eyepurify.train.simgan.SimGANConfig`
        ``settings`` from uint8 ``synthetic`` towards unlabelled ``real`` images."""
        from eyepurify.train.simgan import SimGANConfig, train_simgan

        cfg = SimGANConfig.from_dict(settings)
        key = cache_key("refiner", cfg.to_dict(), {"synthetic": content_hash([synthetic]), "real": content_hash([real])})
        run, model, reused = self._run("simgan", name, key, "refiner.safetensors")
        if reused:
            return model, True
        print(f"training SimGAN refiner {name} → {run}", file=sys.stderr)
        train_simgan(cfg, synthetic, real, run, self.progress)
        (run / "samples.png").unlink(missing_ok=True)
        return model, False
