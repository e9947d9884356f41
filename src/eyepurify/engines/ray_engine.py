"""``eyepurify purify ... --engine ray [--address ADDR]``: the batch engine on Ray Data.

The driver plans the job exactly as the local engine does (names, manifest, ``--shard``),
then :func:`eyepurify.batch.run_batch` hands the units not done yet to :func:`run_with_ray`:
``ray.data.from_items(unit indices).map_batches(JobActor, concurrency=W)``: each of the W
actors builds the job once (its ``remote_job``: same model, settings and backend as the
local run) and loads, runs and PNG-encodes its batches with the job's own code, so
its outputs equal the local run's byte for byte. The driver writes the returned bytes
atomically (group commit) and records them in the manifest, so ``--resume`` and the
report work as locally. Without ``--address`` a local cluster is started (``num_cpus`` =
this machine's CPUs) and stopped at the end. Needs ``pip install eyepurify[ray]``.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np

from eyepurify.errors import EyepurifyError

RAY_HINT = "install eyepurify[ray] (pip install 'eyepurify[ray]') or use --engine local"


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None and importlib.util.find_spec("pyarrow") is not None


class JobActor:
    """One job per Ray worker (built by the driver's ``remote_job``): a batch of unit
    indices → encoded outputs and manifest fields, or each failed item's report line."""

    def __init__(self, units: list[Any], make_job: Any, threads: int, placement: dict[str, Any] | None = None) -> None:
        import torch

        from eyepurify.device import configure

        torch.set_num_threads(max(1, threads))
        configure(**(placement or {"device": "cpu", "precision": "fp32"}))  # the GPU Ray gave it, else the CPU
        self.units = units
        self.job = make_job()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        from eyepurify.batch import _FAILED, ItemFailed, describe_failure, is_run_error, run_chunk
        from eyepurify.pipeline import encode_png

        out: dict[str, list[Any]] = {"i": [], "row": []}

        def row(i: int, **kw: Any) -> None:
            out["i"].append(i)
            out["row"].append(pickle.dumps(kw))

        loaded = []
        for i in (int(i) for i in batch["i"]):
            u = self.units[i]
            try:
                loaded.append((i, self.job.load(u)))
            except Exception as e:
                row(i, error=describe_failure(e, u.where), run=is_run_error(e))
        try:
            results, failed = run_chunk(self.job, [it for _, it in loaded])
        except Exception as e:  # a run error: the driver stops the run with it
            for i, _ in loaded:
                row(i, error=str(e), run=True)
            return out
        errors = {id(it): e for it, e in failed}
        for (i, it), r in zip(loaded, results, strict=True):
            if r is _FAILED:
                row(i, error=describe_failure(errors[id(it)], it.unit.where))
                continue
            try:
                files, extra = self.job.outputs(it, r)
            except ItemFailed as e:
                row(i, error=str(e))
                continue
            row(i, files=[(rel, encode_png(image)) for rel, image in files], extra=extra)
        return out


#: Timings of the last run in this process (perf_counter seconds), read by ``bench throughput``:
#: "ready" (cluster up), "first" (first batch back), "end", "items" (done after the first batch).
LAST_RUN: dict[str, float] = {}


def run_with_ray(units: list[Any], job: Any, out: Path, manifest: Any, batch: int, opts: Any) -> None:
    """Run ``job`` over ``units`` (those not done yet) on Ray Data (see the module
    docstring); writes and marks like the local engine. ``opts``: the run's
    :class:`eyepurify.batch.EngineOptions` (``remote_job`` builds the job in each worker)."""
    if opts.remote_job is None:
        raise EyepurifyError(f"--engine ray is not available for {job.desc} (use --engine local)")
    if not ray_available():
        raise EyepurifyError(f"--engine ray needs ray and pyarrow: {RAY_HINT}")
    import ray

    from eyepurify.pipeline import write_group

    if not units:
        return
    started = not ray.is_initialized()
    if started:
        kw: dict[str, Any] = {"address": opts.address} if opts.address else {"num_cpus": os.cpu_count() or 1}
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **kw)
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        workers = opts.workers or max(1, cpus // 2)
        from eyepurify.device import gpus_per_worker

        if gpus_per_worker() > 0 and not opts.workers:  # one worker per GPU (or per share of one)
            workers = max(1, int(ray.cluster_resources().get("GPU", 0) / gpus_per_worker()))
        threads = max(1, cpus // workers)
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        blocks = max(min(len(units), 2 * workers), -(-len(units) // batch))  # every actor gets work
        ds = ray.data.from_items([{"i": i} for i in range(len(units))], override_num_blocks=blocks)
        from eyepurify.device import worker_settings

        ds = ds.map_batches(JobActor, batch_size=batch, concurrency=workers, num_cpus=threads, num_gpus=gpus_per_worker(),
                            fn_constructor_kwargs={"units": units, "make_job": opts.remote_job, "threads": threads,
                                                   "placement": worker_settings()})
        saved = time.monotonic()
        LAST_RUN.clear()
        LAST_RUN.update(ready=time.perf_counter(), items=0.0)
        for b in ds.iter_batches(batch_size=None, batch_format="numpy"):
            if "first" in LAST_RUN:
                LAST_RUN["items"] += len(b["i"])
            else:
                LAST_RUN["first"] = time.perf_counter()
            files: list[tuple[Path, bytes]] = []
            marks = []
            for i, data in zip(b["i"], b["row"], strict=True):
                u = units[int(i)]
                r = pickle.loads(bytes(data))  # written by our own JobActor above
                if r.get("run"):
                    raise EyepurifyError(str(r["error"]))
                if "error" in r:
                    manifest.mark(u.key, u.source, "failed", error=str(r["error"]))
                    continue
                files += [(manifest.target(rel), blob) for rel, blob in r["files"]]
                marks.append((u, r["extra"]))
            write_group(files)
            for u, extra in marks:
                manifest.mark(u.key, u.source, "done", **extra)
            if time.monotonic() - saved >= opts.manifest_every_s:
                manifest.save()
                saved = time.monotonic()
        LAST_RUN["end"] = time.perf_counter()
    finally:
        if started:
            ray.shutdown()
