"""``eyepurify purify ... --engine ray [--address ADDR]``: the batch on Ray Data.

The driver plans the job exactly as the local engine does (names, manifest, ``--shard``),
then runs ``ray.data.from_items(unit indices).map_batches(PurifyActor, concurrency=W)``:
each of the W actors builds one purifier (same model, settings and backend as the local
run) and decodes, purifies and PNG-encodes its batches with eyepurify's own decoder, so
its outputs equal the local run's byte for byte. The driver writes the returned bytes
atomically (group commit) and records them in the manifest, so ``--resume`` and the
report work as locally. Without ``--address`` a local cluster is started (``num_cpus`` =
this machine's CPUs) and stopped at the end. Needs ``pip install eyepurify[ray]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from eyepurify.errors import EyepurifyError

RAY_HINT = "install eyepurify[ray] (pip install 'eyepurify[ray]') or use --engine local"


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None and importlib.util.find_spec("pyarrow") is not None


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """What an actor needs to rebuild the driver's purifier and loader (plain values)."""
    keys = ("model", "segmenter", "segment_size", "eye_scale", "batch", "backend", "masks", "predict_masks",
            "output", "format")
    return {k: getattr(args, k, None) for k in keys}


class PurifyActor:
    """One purifier per Ray worker: a batch of unit indices → encoded outputs and manifest extras."""

    def __init__(self, units: list[Any], settings: dict[str, Any], threads: int) -> None:
        import torch

        from eyepurify.commands.purify import build_purifier

        torch.set_num_threads(max(1, threads))
        self.units = units
        self.args = argparse.Namespace(**settings)
        self.purifier = build_purifier(self.args, settings["backend"])
        self.crop = settings["output"] == "crop"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        from eyepurify.batch import describe_failure, is_run_error
        from eyepurify.commands.purify import _label_fields, _load
        from eyepurify.pipeline import encode_png

        idx = [int(i) for i in batch["i"]]
        out: dict[str, list[Any]] = {"i": [], "image": [], "mask": [], "extra": [], "error": [], "run_error": []}
        loaded: list[tuple[int, Any, Any, str]] = []
        for i in idx:
            try:
                smp, m, src = _load(self.units[i], self.args)
                loaded.append((i, smp, m, src))
            except Exception as e:
                self._row(out, i, error=describe_failure(e, self.units[i].where), run=is_run_error(e))
        try:
            results = self.purifier.process([s.image for _, s, _, _ in loaded], [m for _, _, m, _ in loaded])
        except Exception as e:
            if is_run_error(e):
                for i, *_ in loaded:
                    self._row(out, i, error=str(e), run=True)
                return out
            results = []
            for i, s, m, _ in loaded:
                try:
                    results.append(self.purifier.process([s.image], [m])[0])
                except Exception as e1:
                    self._row(out, i, error=describe_failure(e1, self.units[i].where), run=is_run_error(e1))
                    results.append(None)
        for (i, smp, _, msrc), r in zip(loaded, results, strict=True):
            if r is None:
                continue
            lab = r.crop_labels if self.crop else r.labels
            extra: dict[str, object] = {}
            if lab is not None:
                extra["mask"] = msrc or "predicted"
            if r.box is not None:
                extra["box"] = r.box.to_list()
                extra["eye_found"] = r.eye_found
            if self.units[i].from_dataset:
                extra["labels"] = _label_fields(smp)
            self._row(out, i, image=encode_png(r.crop if self.crop else r.image),
                      mask=b"" if lab is None else encode_png(np.asarray(lab, dtype=np.uint8)), extra=json.dumps(extra))
        return out

    @staticmethod
    def _row(out: dict[str, list[Any]], i: int, image: bytes = b"", mask: bytes = b"", extra: str = "",
             error: str = "", run: bool = False) -> None:
        for k, v in (("i", i), ("image", image), ("mask", mask), ("extra", extra), ("error", error), ("run_error", run)):
            out[k].append(v)


#: Timings of the last run in this process (perf_counter seconds), read by ``bench throughput``:
#: "ready" (cluster up), "first" (first batch back), "end", "items" (done after the first batch).
LAST_RUN: dict[str, float] = {}


def purify_with_ray(units: list[Any], purifier: Any, out: Path, manifest: Any, args: argparse.Namespace) -> None:
    """Purify ``units`` on Ray Data (see the module docstring); writes and marks like the local engine."""
    if not ray_available():
        raise EyepurifyError(f"--engine ray needs ray and pyarrow: {RAY_HINT}")
    import ray

    from eyepurify.commands.purify import MANIFEST_EVERY_S
    from eyepurify.pipeline import write_group

    todo = [i for i, u in enumerate(units) if not manifest.is_done(u.key, u.source)]
    if not todo:
        return
    started = not ray.is_initialized()
    if started:
        kw: dict[str, Any] = {"address": args.address} if args.address else {"num_cpus": os.cpu_count() or 1}
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **kw)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        workers = args.workers or max(1, cpus // 2)
        threads = max(1, cpus // workers)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        blocks = max(min(len(todo), 2 * workers), -(-len(todo) // args.batch))  # every actor gets work
        ds = ray.data.from_items([{"i": i} for i in todo], override_num_blocks=blocks)
        ds = ds.map_batches(PurifyActor, batch_size=args.batch, concurrency=workers, num_cpus=threads,
                            fn_constructor_kwargs={"units": units, "settings": _settings(args), "threads": threads})
        saved = time.monotonic()
        LAST_RUN.clear()
        LAST_RUN.update(ready=time.perf_counter(), items=0.0)
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            if "first" in LAST_RUN:
                LAST_RUN["items"] += len(batch["i"])
            else:
                LAST_RUN["first"] = time.perf_counter()
            files: list[tuple[Path, bytes]] = []
            marks = []
            for i, img, msk, extra, err, run_err in zip(batch["i"], batch["image"], batch["mask"], batch["extra"],
                                                        batch["error"], batch["run_error"], strict=True):
                u = units[int(i)]
                if run_err:
                    raise EyepurifyError(str(err))
                if err:
                    manifest.mark(u.key, u.source, "failed", error=str(err))
                    continue
                files.append((out / u.outputs[0], bytes(img)))
                if len(msk):
                    files.append((out / u.outputs[1], bytes(msk)))
                marks.append((u, json.loads(str(extra))))
            write_group(files)
            for u, extra in marks:
                manifest.mark(u.key, u.source, "done", **extra)
            if time.monotonic() - saved >= MANIFEST_EVERY_S:
                manifest.save()
                saved = time.monotonic()
        LAST_RUN["end"] = time.perf_counter()
    finally:
        if started:
            ray.shutdown()
