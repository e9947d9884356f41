"""The local engine: a job's units in this process, decode ahead of and encode/write behind
the forward passes (``--io threads``), or one step after the other (``--io serial``)."""

from __future__ import annotations

import contextlib
import functools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from eyepurify.engines.job import (
    FAILED,
    PNG_LEVEL,
    ItemFailed,
    Job,
    Loaded,
    Mark,
    Payload,
    Stream,
    Unit,
    chunks,
    encode,
    fail_unit,
    placed,
    run_chunk,
    run_stream,
    write_group,
)
from eyepurify.engines.manifest import Manifest
from eyepurify.engines.videofile import VideoIn, VideoOut
from eyepurify.io import write_bytes, write_image
from eyepurify.progress import progress_bar

if TYPE_CHECKING:
    from eyepurify.engines.run import EngineOptions


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


def _video_out(manifest: Manifest, source: str | Path | None, rel: str, fps: float) -> VideoOut:
    """The streaming writer of one output video (H.264 with ``source``'s audio where it can be)."""
    return VideoOut(manifest.target(rel), fps, source=source)


def _run_streams(todo: list[Unit], job: Job, manifest: Manifest, batch: int, chunk_pixels: int,
                 opts: EngineOptions) -> None:
    """Every video, one after the other, written by streaming writers beside their targets."""
    for u in progress_bar(todo, total=len(todo), desc=f"{job.desc} videos", unit="video"):
        assert u.video is not None
        try:
            stream = Stream(u, VideoIn(u.video))
            out = run_stream(job, stream, functools.partial(_video_out, manifest, u.video), batch, chunk_pixels,
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


# ---------------------------------------------------------------- decoding ahead, writing behind

T = TypeVar("T")
R = TypeVar("R")
_END = object()


def prefetch(items: Iterable[T], fn: Callable[[T], R], workers: int = 2, ahead: int = 64) -> Iterator[tuple[T, R | BaseException]]:
    """(item, fn(item) or the exception it raised) in input order, ``fn`` running on
    ``workers`` threads at most ``ahead`` items in front of the consumer."""
    if workers < 1:
        for it in items:
            try:
                yield it, fn(it)
            except Exception as e:
                yield it, e
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="eyepurify-load") as pool:
        queue: deque[tuple[T, Future[R]]] = deque()
        source = iter(items)
        for it in source:
            queue.append((it, pool.submit(fn, it)))
            if len(queue) >= ahead:
                break
        while queue:
            it, fut = queue.popleft()
            nxt = next(source, _END)
            if nxt is not _END:
                queue.append((nxt, pool.submit(fn, nxt)))  # type: ignore[arg-type]
            exc = fut.exception()
            yield it, (exc if exc is not None else fut.result())


class GroupWriter:
    """Encode and write chunks of outputs on a background thread, one chunk behind the
    caller: ``submit(jobs, tag)`` queues a chunk (each job: path → uint8 image or bytes); ``done()``
    returns the tags of the chunks written so far, re-raising a write error."""

    def __init__(self, workers: int = 2, level: int = PNG_LEVEL) -> None:
        self.level = level
        self._encode = ThreadPoolExecutor(max(1, workers), thread_name_prefix="eyepurify-encode")
        self._commit = ThreadPoolExecutor(1, thread_name_prefix="eyepurify-write")
        self._inflight: deque[tuple[object, Future[None]]] = deque()

    def _write(self, jobs: list[tuple[Path, np.ndarray | bytes]]) -> None:
        data = list(self._encode.map(lambda j: (j[0], encode(j[1], self.level)), jobs))
        write_group(data)

    def submit(self, jobs: list[tuple[Path, np.ndarray | bytes]], tag: object) -> None:
        self._inflight.append((tag, self._commit.submit(self._write, jobs)))

    def done(self, wait: bool = False, keep: int = 1) -> list[object]:
        """Tags of written chunks, oldest first; with ``wait``, all but the newest ``keep``
        are waited for (``keep=0``: all)."""
        out = []
        while self._inflight and (self._inflight[0][1].done() or (wait and len(self._inflight) > keep)):
            tag, fut = self._inflight.popleft()
            fut.result()
            out.append(tag)
        return out

    def close(self) -> None:
        for _, fut in self._inflight:
            fut.cancel()
        self._commit.shutdown(wait=True)
        self._encode.shutdown(wait=True)
