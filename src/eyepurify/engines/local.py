"""The local engine: a job's units in this process, decode ahead of and encode/write behind
the forward passes (``--io threads``), or one step after the other (``--io serial``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from eyepurify.engines.job import (
    FAILED,
    ItemFailed,
    Job,
    Loaded,
    Mark,
    Payload,
    Stream,
    Unit,
    chunks,
    fail_unit,
    placed,
    run_chunk,
    run_stream,
)
from eyepurify.engines.manifest import Manifest
from eyepurify.engines.options import EngineOptions
from eyepurify.engines.pipeline import GroupWriter, prefetch
from eyepurify.engines.videofile import VideoIn, VideoOut
from eyepurify.io import write_bytes, write_image
from eyepurify.progress import progress_bar


def write_now(files: list[tuple[Path, Payload]]) -> None:
    """Write each file atomically with its own fsync (``--io serial``; PNG at the default level)."""
    for path, data in files:
        if isinstance(data, bytes):
            write_bytes(path, data)
        else:
            write_image(path, np.asarray(data))


def _finish_chunk(job: Job, pending: list[Loaded], manifest: Manifest, writer: GroupWriter | None) -> None:
    """Process one chunk and write the results: here (``writer`` None), or queued on
    ``writer`` (marked done by :func:`_collect` once on disk). Write errors (disk full,
    permissions) stop the run."""
    results, failed = run_chunk(job, pending)
    for it, e in failed:
        fail_unit(manifest, it.unit, e)
    files: list[tuple[Path, Payload]] = []
    marks: list[Mark] = []
    for it, r in zip(pending, results, strict=True):
        if r is FAILED:
            continue
        try:
            out = job.outputs(it, r)
        except ItemFailed as e:
            manifest.mark(it.unit.key, it.unit.source, "failed", error=str(e))
            continue
        f, m = placed(manifest, it.unit, out)
        if writer is None:
            write_now(f)
            for key, source, fields in m:
                manifest.mark(key, source, "done", **fields)
        else:
            files += f
            marks += m
    if writer is not None and marks:
        writer.submit(files, marks)


def _collect(writer: GroupWriter, manifest: Manifest, wait: bool = False, keep: int = 1) -> None:
    """Mark the items of every chunk ``writer`` has committed as done (with ``wait``: all
    but the newest ``keep`` chunks are waited for)."""
    for marks in writer.done(wait=wait, keep=keep):
        for key, source, fields in marks:  # type: ignore[attr-defined]
            manifest.mark(key, source, "done", **fields)


def _run_images(todo: list[Unit], job: Job, manifest: Manifest, batch: int, chunk_pixels: int,
                opts: EngineOptions) -> None:
    serial = opts.io == "serial"
    writer = None if serial else GroupWriter()
    saved, save_cost = time.monotonic(), 0.0
    # several decoding threads for files; one (still ahead of inference) for datasets that
    # keep a file open and seek in it (HDF5, videos), which must not be read concurrently
    workers = 0 if serial else 2 if all(u.thread_safe for u in todo) else 1
    loaded = prefetch(todo, job.load, workers=workers, ahead=2 * batch)

    def good() -> Iterator[Loaded]:
        for u, res in progress_bar(loaded, total=len(todo), desc=job.desc, unit="image"):
            if isinstance(res, BaseException):
                if not isinstance(res, Exception):
                    raise res
                fail_unit(manifest, u, res)
                continue
            yield res

    try:
        for pending in chunks(good(), batch, chunk_pixels):
            _finish_chunk(job, pending, manifest, writer)
            if writer is not None:
                _collect(writer, manifest, wait=True, keep=1)  # one chunk in flight behind this one
            # a manifest of N items costs O(N) to write: wait 20× its last cost between saves,
            # so saving stays under ~5 % of the run at any size (213,659 patches: ~40 MB)
            if serial or time.monotonic() - saved >= max(opts.manifest_every_s, 20 * save_cost):
                t = time.monotonic()
                manifest.save()
                saved = time.monotonic()
                save_cost = saved - t
        if writer is not None:
            _collect(writer, manifest, wait=True, keep=0)
    finally:
        if writer is not None:
            with contextlib.suppress(Exception):  # chunks already on disk count (resume); the error is what counts
                _collect(writer, manifest, wait=True, keep=0)
            writer.close()


def _run_streams(todo: list[Unit], job: Job, manifest: Manifest, batch: int, chunk_pixels: int,
                 opts: EngineOptions) -> None:
    """Every video, one after the other, written by streaming writers beside their targets."""
    for u in progress_bar(todo, total=len(todo), desc=f"{job.desc} videos", unit="video"):
        assert u.video is not None
        try:
            stream = Stream(u, VideoIn(u.video))
            out = run_stream(job, stream, lambda rel, fps: VideoOut(manifest.target(rel), fps), batch, chunk_pixels,
                             overlap=opts.io != "serial")
            files, marks = placed(manifest, u, out)
            write_now(files)
            for key, source, fields in marks:
                manifest.mark(key, source, "done", **fields)
        except OSError:
            raise  # writing into --out failed: the run stops (exit 2)
        except Exception as e:
            fail_unit(manifest, u, e)
        manifest.save()


def run_local(todo: list[Unit], job: Job, manifest: Manifest, batch: int, chunk_pixels: int,
              opts: EngineOptions) -> None:
    """Run ``job`` over the units not done yet: the images (and dataset samples), then the videos."""
    _run_images([u for u in todo if u.video is None], job, manifest, batch, chunk_pixels, opts)
    _run_streams([u for u in todo if u.video is not None], job, manifest, batch, chunk_pixels, opts)
