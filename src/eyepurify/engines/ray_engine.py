"""``--engine ray [--address ADDR]``: the batch engine on Ray Data.

The driver plans the run exactly as the local engine does (names, manifest, ``--shard``),
then hands the units not done yet to :func:`run_with_ray`:
``ray.data.from_items(unit indices).map_batches(JobActor, concurrency=W)``: each of the W
actors builds the job once from the run's frozen config (same model, settings and backend
as the local run) and decodes, runs and encodes its batches with the job's own code
(:func:`eyepurify.engines.job.run_chunk`; a video whole, by
:func:`eyepurify.engines.job.run_stream` into a temp file of the worker), so its outputs equal
the local run's byte for byte. The driver writes the returned bytes atomically (group
commit) and records them in the manifest, so ``--resume`` and the report work as locally.
Without ``--address`` a local cluster is started (``num_cpus`` = this machine's CPUs) and
stopped at the end. Needs ``pip install eyepurify[ray]``.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eyepurify.engines.job import (
    FAILED,
    ItemFailed,
    JobConfig,
    More,
    Outputs,
    Stream,
    Unit,
    describe_failure,
    is_run_error,
    placed,
    run_chunk,
    run_stream,
)
from eyepurify.engines.manifest import Manifest
from eyepurify.errors import EyepurifyError

if TYPE_CHECKING:
    from eyepurify.engines.run import EngineOptions

RAY_HINT = "install eyepurify[ray] (pip install 'eyepurify[ray]') or use --engine local"


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None and importlib.util.find_spec("pyarrow") is not None


def check_ray() -> None:
    """EyepurifyError with the install line when Ray is missing (before ``--out`` is touched)."""
    if not ray_available():
        raise EyepurifyError(f"--engine ray needs ray and pyarrow: {RAY_HINT}")


def _encoded(out: Outputs) -> Outputs:
    from eyepurify.engines.job import encode

    return Outputs([(rel, encode(p)) for rel, p in out.files], out.fields,
                   [More(m.source, m.wanted, m.layout, [(i, encode(p)) for i, p in m.files], m.fields) for m in out.more])


class JobActor:
    """One job per Ray worker (built from the run's config): a batch of unit indices →
    each unit's encoded :class:`~eyepurify.engines.job.Outputs`, or its report line.
    ``placement``: the worker's device, precision and compile
    (:func:`eyepurify.device.worker_settings`; None: the CPU in float32)."""

    def __init__(self, units: list[Unit], config: JobConfig, threads: int, batch: int, chunk_pixels: int,
                 max_pixels: int, placement: dict[str, Any] | None = None) -> None:
        import torch

        from eyepurify.device import configure

        torch.set_num_threads(max(1, threads))
        configure(**(placement or {"device": "cpu", "precision": "fp32"}))  # the GPU Ray gave it, else the CPU
        self.units, self.batch, self.chunk_pixels, self.max_pixels = units, batch, chunk_pixels, max_pixels
        self.job = config.create_job()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        from eyepurify.io import pixel_limit

        out: dict[str, list[Any]] = {"i": [], "row": []}

        def row(i: int, **kw: Any) -> None:
            out["i"].append(i)
            out["row"].append(pickle.dumps(kw))

        with pixel_limit(self.max_pixels):
            indices = [int(i) for i in batch["i"]]
            for i in (i for i in indices if self.units[i].video is not None):
                try:
                    row(i, out=self._video(self.units[i]))
                except Exception as e:
                    row(i, error=describe_failure(e, self.units[i].where), run=is_run_error(e) or isinstance(e, OSError))
            loaded = []
            for i in (i for i in indices if self.units[i].video is None):
                try:
                    loaded.append((i, self.job.load(self.units[i])))
                except Exception as e:
                    row(i, error=describe_failure(e, self.units[i].where), run=is_run_error(e))
            try:
                results, failed = run_chunk(self.job, [it for _, it in loaded])
            except Exception as e:  # a run error: the driver stops the run with it
                for i, _ in loaded:
                    row(i, error=str(e), run=True)
                return out
            errors = {id(it): e for it, e in failed}
            for (i, it), r in zip(loaded, results, strict=True):
                if r is FAILED:
                    row(i, error=describe_failure(errors[id(it)], it.unit.where))
                    continue
                try:
                    row(i, out=_encoded(self.job.outputs(it, r)))
                except ItemFailed as e:
                    row(i, error=str(e))
        return out

    def _video(self, unit: Unit) -> Outputs:
        """A video whole on this worker: written into a temp folder here, returned as bytes."""
        from eyepurify.engines.videofile import VideoIn, VideoOut

        assert unit.video is not None
        with tempfile.TemporaryDirectory(prefix="eyepurify-ray-") as tmp:
            targets: dict[str, Path] = {}

            def sink(rel: str, fps: float) -> VideoOut:
                targets[rel] = Path(tmp) / f"{len(targets)}{Path(rel).suffix.lower()}"
                return VideoOut(targets[rel], fps, source=unit.video)

            final = run_stream(self.job, Stream(unit, VideoIn(unit.video)), sink, self.batch, self.chunk_pixels)
            videos = [(rel, path.read_bytes()) for rel, path in targets.items()]
        enc = _encoded(final)
        return Outputs(videos + enc.files, enc.fields, enc.more)


@dataclass
class RayTimings:
    """When a Ray run got going (perf_counter seconds): ``ready`` (cluster up), ``first``
    (first batch back), ``end``; ``items`` done after the first batch."""

    ready: float = 0.0
    first: float | None = None
    end: float = 0.0
    items: int = 0


def run_with_ray(units: list[Unit], config: JobConfig, manifest: Manifest, batch: int, opts: EngineOptions,
                 max_pixels: int) -> RayTimings:
    """Run the job ``config`` builds over ``units`` (those not done yet) on Ray Data (see the
    module docstring); writes and marks like the local engine. Returns its timings."""
    check_ray()
    import ray

    from eyepurify.engines.job import write_group

    timings = RayTimings()
    if not units:
        return timings
    started = not ray.is_initialized()
    if started:
        kw: dict[str, Any] = {"address": opts.address} if opts.address else {"num_cpus": os.cpu_count() or 1}
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **kw)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        workers = opts.workers or max(1, cpus // 2)
        from eyepurify.device import worker_gpus, worker_settings

        # the workers' device, precision, compile: the config's (PurifyConfig.portable), else this process's
        settings = ({k: getattr(config, k) for k in ("device", "precision", "compile")}
                    if getattr(config, "device", None) is not None else worker_settings())
        gpus = worker_gpus(settings)
        if gpus > 0 and not opts.workers:  # one worker per GPU (or per share of one)
            workers = max(1, int(ray.cluster_resources().get("GPU", 0) / gpus))
        threads = max(1, cpus // workers)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        blocks = max(min(len(units), 2 * workers), -(-len(units) // batch))  # every actor gets work
        ds: Any = ray.data.from_items([{"i": i} for i in range(len(units))], override_num_blocks=blocks)
        ds = ds.map_batches(JobActor, batch_size=batch, concurrency=workers, num_cpus=threads, num_gpus=gpus,
                            fn_constructor_kwargs={"units": units, "config": config, "threads": threads, "batch": batch,
                                                   "chunk_pixels": opts.chunk_pixels, "max_pixels": max_pixels,
                                                   "placement": settings})
        saved = time.monotonic()
        timings.ready = time.perf_counter()
        for b in ds.iter_batches(batch_size=None, batch_format="numpy"):
            if timings.first is None:
                timings.first = time.perf_counter()
            else:
                timings.items += len(b["i"])
            files: list[tuple[Path, Any]] = []
            marks = []
            for i, data in zip(b["i"], b["row"], strict=True):
                u = units[int(i)]
                r = pickle.loads(bytes(data))  # written by our own JobActor above
                if r.get("run"):
                    raise EyepurifyError(str(r["error"]))
                if "error" in r:
                    manifest.mark(u.key, u.source, "failed", error=str(r["error"]))
                    continue
                f, m = placed(manifest, u, r["out"])
                files += f
                marks += m
            write_group(files)
            for key, source, fields in marks:
                manifest.mark(key, source, "done", **fields)
            if time.monotonic() - saved >= opts.manifest_every_s:
                manifest.save()
                saved = time.monotonic()
        timings.end = time.perf_counter()
    finally:
        if started:
            ray.shutdown()
    return timings
