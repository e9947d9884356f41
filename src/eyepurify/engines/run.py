"""One batch run, whatever the job: ``run_batch(config, inputs, out, options) -> Summary``.

Expands the inputs, builds the job from its frozen config (before ``--out`` is touched, so a
bad setting or model leaves nothing behind), opens the manifest (the guard on ``--out``, its
lock, ``--resume``), plans every input's names, keeps this ``--shard``'s units, runs the
ones not done yet on the local or the Ray engine, and writes ``index.csv`` and
``report.txt``; on any error what is done is saved for ``--resume`` before it is raised.
"""

from __future__ import annotations

import contextlib
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from eyepurify.engines.job import Job, Unit, stream_report
from eyepurify.engines.manifest import Manifest
from eyepurify.engines.plan import expand_inputs, keep_shard, parse_shard
from eyepurify.io import DEFAULT_MAX_PIXELS, csv_cell, pixel_limit, write_text
from eyepurify.preflight import refuse_when_nothing_can_run

#: Decoded pixels held at once before a forward pass: a chunk closes early when it reaches
#: this, so memory stays bounded however large the photos (each is processed at the eye scale).
CHUNK_PIXELS = 16_000_000
#: The manifest (all items, rewritten whole) is saved at most this often while ``--io
#: threads`` runs, and at the end: items done since the last save are redone by --resume.
MANIFEST_EVERY_S = 2.0


@dataclass(frozen=True)
class EngineOptions:
    """How :func:`eyepurify.engines.run.run_batch` runs a job.

    io: ``threads`` decodes ahead of the forward passes (:func:`eyepurify.engines.local.prefetch`;
    one decoding thread for datasets that hold an open file; a video's frames one chunk
    ahead) and encodes and writes behind them (:class:`eyepurify.engines.local.GroupWriter`:
    PNG level 1, one disk flush per chunk), the manifest saved at most every
    ``manifest_every_s``; ``serial``: one step after the other, PNG at the default level, an
    fsync per file, the manifest saved after every chunk (the old path, kept for benchmarks).
    engine: ``local`` or ``ray`` (:mod:`eyepurify.engines.ray_engine`: ``address`` the
    cluster, ``workers`` the actors). ``chunk_pixels``: see :data:`CHUNK_PIXELS`.
    """

    io: str = "threads"
    engine: str = "local"
    address: str | None = None
    workers: int | None = None
    manifest_every_s: float = MANIFEST_EVERY_S
    chunk_pixels: int = CHUNK_PIXELS

    def check(self) -> None:
        """EyepurifyError for options no engine has (one line, exit 2)."""
        from eyepurify.errors import EyepurifyError

        if self.io not in ("threads", "serial"):
            raise EyepurifyError(f"unknown --io {self.io!r}: choose threads or serial")
        if self.engine not in ("local", "ray"):
            raise EyepurifyError(f"unknown --engine {self.engine!r}: choose local or ray")
        if self.workers is not None and self.workers < 1:
            raise EyepurifyError("--workers must be at least 1")


class RunConfig(Protocol):
    """A frozen run config (:mod:`eyepurify.engines.jobs`)."""

    @property
    def command(self) -> str: ...
    @property
    def batch(self) -> int: ...

    def portable(self) -> Any: ...
    def create_job(self) -> Any: ...
    def settings(self, job: Any) -> dict[str, object]: ...
    def meta(self, job: Any, inputs: list[str], max_pixels: int) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RunOptions:
    """How a run treats ``--out`` and which part of the inputs it takes: ``resume`` /
    ``overwrite`` (:meth:`Manifest.open`), ``shard`` "K/N", ``max_pixels`` the decode limit,
    ``engine`` how the job runs."""

    resume: bool = False
    overwrite: bool = False
    shard: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    engine: EngineOptions = field(default_factory=EngineOptions)


@dataclass
class Summary:
    """How a run ended: items done (``skipped`` of them already done before), failed
    (input, reason), notes (input, note), the report's path, and the Ray engine's timings."""

    out: Path
    done: int
    skipped: int
    failed: list[tuple[str, str]]
    notes: list[tuple[str, str]]
    report: Path
    timings: Any = None

    @property
    def exit_code(self) -> int:
        """0: all done; 1: some inputs failed; 2: nothing done."""
        if self.done == 0:
            return 2
        return 1 if self.failed else 0


def write_index(out: Path, manifest: Manifest) -> None:
    """``index.csv``: the labels of every done dataset sample (text cells escaped, :func:`csv_cell`)."""
    rows = [(k, v) for k, v in sorted(manifest.items.items()) if v.get("status") == "done" and isinstance(v.get("labels"), dict)]
    if not rows:
        return
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["file", "source", "mask", "gaze_x", "gaze_y", "gaze_z", "head_pitch", "head_yaw", "pupil_x", "pupil_y"])
    for key, v in rows:
        lab = v["labels"]
        g = lab.get("gaze") or ["", "", ""]
        h = lab.get("head_pose") or ["", ""]
        pc = lab.get("pupil_center") or ["", ""]
        w.writerow([csv_cell(c) for c in (key, lab.get("source", ""), v.get("mask", ""), *g, *h, *pc)])
    write_text(out / "index.csv", buf.getvalue())


def _finish(out: Path, manifest: Manifest) -> Path:
    manifest.save()
    write_index(out, manifest)
    return manifest.write_report()


def _execute(units: list[Unit], job: Job, config: RunConfig, manifest: Manifest, batch: int,
             options: RunOptions) -> tuple[int, Any]:
    """Run the units not done yet; (how many were done already, the engine's timings)."""
    todo = [u for u in units if not manifest.is_done(u.key, u.source)]
    manifest.save()
    timings = None
    opts = options.engine
    if opts.engine == "ray":
        from eyepurify.engines.ray_engine import run_with_ray

        timings = run_with_ray(todo, config.portable(), manifest, batch, opts, options.max_pixels)
    else:
        from eyepurify.engines.local import run_local

        run_local(todo, job, manifest, batch, opts.chunk_pixels, opts)
    for u in units:
        if u.video is not None:
            stream_report(manifest, u)
    manifest.save()
    return len(units) - len(todo), timings


def run_batch(config: RunConfig, inputs: list[str], out: Path, options: RunOptions | None = None) -> Summary:
    """Run ``config``'s job over ``inputs`` into ``out`` (see the module docstring), in
    chunks of ``config.batch`` images (or video frames)."""
    options = options or RunOptions()
    options.engine.check()
    shard = parse_shard(options.shard)  # a bad --shard fails before any work
    if options.engine.engine == "ray":
        from eyepurify.engines.ray_engine import check_ray

        check_ray()
    items = expand_inputs(inputs)
    refuse_when_nothing_can_run(items)  # a wrong path: one line, exit 2, --out not created
    job = config.create_job()  # (exports the ONNX models the Ray workers then load from the cache)
    manifest = Manifest.open(out, resume=options.resume, overwrite=options.overwrite,
                             settings={**config.settings(job), "shard": options.shard},
                             meta=config.meta(job, inputs, options.max_pixels),
                             inputs=[it.path for it in items if it.kind != "missing"])
    try:
        with pixel_limit(options.max_pixels):
            try:
                units = job.plan(items, manifest)
                keep = keep_shard(manifest, shard)  # names claimed over all inputs
                if keep is not None:
                    units = [u for u in units if u.key in keep]
                skipped, timings = _execute(units, job, config, manifest, config.batch, options)
            except BaseException:
                with contextlib.suppress(Exception):  # keep what is done for --resume; the error is what counts
                    _finish(out, manifest)
                raise
        report = _finish(out, manifest)
    finally:
        manifest.close()
    done = sum(1 for v in manifest.items.values() if v.get("status") == "done")
    return Summary(out, done, skipped, manifest.failures(), manifest.notes(), report, timings)
