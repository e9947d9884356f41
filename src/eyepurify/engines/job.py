"""The one Job protocol every engine runs, and the pieces of work it is given.

A run is planned into :class:`Unit` s (one per output item: an image file, a dataset sample,
a video, a face photo), each with its manifest key and output names. An engine then, per
unit, *decodes* (:meth:`Job.load` for an image; the engine reads a video's frames itself),
*processes* chunks in one call (:meth:`Job.run`: images of several units, or consecutive
frames of one video) and *encodes* each result (:meth:`Job.outputs`: the files to write and
the manifest fields); a video ends with :meth:`Job.finish`. The engines (local, Ray) share
:func:`run_chunk` and :func:`run_stream`, so every kind of input runs the same road.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import io
import os
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
from PIL import Image

from eyepurify.errors import DataError, EyepurifyError, one_line
from eyepurify.io import file_mode, temp_file
from eyepurify.sample import EyeSample

if TYPE_CHECKING:
    from eyepurify.engines.manifest import Manifest
    from eyepurify.engines.videofile import VideoIn, VideoOut

#: zlib level for PNG outputs: 1 encodes ~3× faster than PIL's default 6, files ~10–20 % larger.
PNG_LEVEL = 1
T = TypeVar("T")
#: What a job asks to write: a uint8 image (encoded as PNG by the engine) or a file's bytes.
Payload = np.ndarray | bytes


@dataclass
class Unit:
    """One item of a run: its manifest key and output paths (relative to ``--out``), its
    source, how to read it (``read`` an image; ``video`` a video file, read frame by frame),
    the names its label map may have inside ``--masks``, and where it is (for reports)."""

    key: str
    source: str
    outputs: list[str]
    read: Callable[[], EyeSample] | None = None
    video: Path | None = None
    mask_names: tuple[str, ...] = ()
    where: str = ""
    #: the name it asked for (relative to ``--out``; its claimed ``outputs`` may differ by ``_2``)
    name: str = ""
    from_dataset: bool = False
    #: its reader may run on several threads at once (files; not a dataset holding an open file)
    thread_safe: bool = True


@dataclass
class Loaded:
    """A decoded image or video frame: its unit, its sample, the label map to use with it
    (None: predict one) and where that map came from ("file", "dataset" or ""); ``stream``
    the video a frame belongs to and ``frame`` its index there."""

    unit: Unit
    sample: EyeSample
    mask: np.ndarray | None = None
    mask_source: str = ""
    stream: Stream | None = None
    frame: int = 0


@dataclass
class Stream:
    """An opened video: its reader, the frames read so far, and the job's own state for it
    (a face tracker, the geometry of every frame, ...)."""

    unit: Unit
    video: VideoIn
    read: int = 0
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Slot:
    """In the fields of a :class:`More` item: its ``index``-th claimed name, once claimed."""

    index: int


def fill_slots(value: object, names: list[str]) -> Any:
    """``value`` with every :class:`Slot` in it (in dicts and lists) replaced by its name."""
    if isinstance(value, Slot):
        return names[value.index]
    if isinstance(value, dict):
        return {k: fill_slots(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_slots(v, names) for v in value]
    return value


@dataclass
class More:
    """A further manifest item one input made while it was processed (a face photo's second
    face in ``--output crop``): its names are claimed like a planned unit's (``wanted`` in
    ``layout``); ``files`` are (index into those names, payload); a :class:`Slot` in
    ``fields`` becomes the claimed name."""

    source: str
    wanted: str
    layout: tuple[str, ...]
    files: list[tuple[int, Payload]]
    fields: dict[str, object]


@dataclass
class Outputs:
    """What one result is written as: ``files`` [(path relative to ``--out``, payload)] in
    that order (for a video frame, the path names the video it goes into), the manifest
    ``fields`` of the done item, and ``more`` items."""

    files: list[tuple[str, Payload]] = field(default_factory=list)
    fields: dict[str, object] = field(default_factory=dict)
    more: list[More] = field(default_factory=list)


class ItemFailed(Exception):
    """Raised by :meth:`Job.outputs` for an item it cannot finish; the message is its report line."""


class JobConfig(Protocol):
    """A frozen run config that builds its job (in this process, or in each Ray worker)."""

    def create_job(self) -> Job: ...


class Job(Protocol):
    """What an engine runs (see the module docstring). ``desc`` names it in progress bars."""

    desc: str

    def plan(self, items: Sequence[Any], manifest: Manifest) -> list[Unit]:
        """Claim the output names of every input (:mod:`eyepurify.engines.plan`)."""
        ...

    def load(self, unit: Unit) -> Loaded:
        """Decode one image unit (may run on a decoding thread)."""
        ...

    def run(self, items: list[Loaded]) -> list[Any]:
        """Process a chunk in one call; a result may be the Exception that item failed with."""
        ...

    def outputs(self, item: Loaded, result: Any) -> Outputs:
        """Encode one result: its files and manifest fields."""
        ...

    def finish(self, stream: Stream) -> Outputs:
        """A video's manifest fields (and files beside it), once all its frames are written."""
        ...


def describe_failure(e: BaseException, where: str) -> str:
    """The one-line report reason for an input that failed with ``e``, naming ``where``."""
    msg = str(e) if isinstance(e, EyepurifyError) else f"{type(e).__name__}: {e}"
    if where not in msg:
        msg = f"{where}: {msg}"
    return one_line(msg)


def is_run_error(e: BaseException) -> bool:
    """True for errors about the run rather than one input (a wrong setting, a model that
    cannot be used): they stop the batch with exit 2 instead of failing one input."""
    return isinstance(e, EyepurifyError) and not isinstance(e, DataError)


class _Failed:
    def __repr__(self) -> str:
        return "FAILED"


#: The result :func:`run_chunk` gives an item that failed.
FAILED: Any = _Failed()


def run_chunk(job: Job, items: list[Loaded]) -> tuple[list[Any], list[tuple[Loaded, Exception]]]:
    """``job.run`` on a chunk, one item at a time when the chunk fails (so one bad image
    fails alone): (results, with :data:`FAILED` for failed items; [(item, its error)]). A
    result the job returns as an Exception fails its item; a run error
    (:func:`is_run_error`) is raised."""
    try:
        results = job.run(items)
    except Exception as e:
        if is_run_error(e):
            raise
        results = []
        for it in items:
            try:
                results.append(job.run([it])[0])
            except Exception as e1:
                if is_run_error(e1):
                    raise
                results.append(e1)
    failed: list[tuple[Loaded, Exception]] = []
    for i, (it, r) in enumerate(zip(items, results, strict=True)):
        if isinstance(r, Exception):
            if is_run_error(r):
                raise r
            failed.append((it, r))
            results[i] = FAILED
    return results, failed


def chunks(items: Iterable[Loaded], batch: int, chunk_pixels: int) -> Iterator[list[Loaded]]:
    """``items`` in lists of ``batch`` or fewer, closed early at ``chunk_pixels`` decoded pixels."""
    pending: list[Loaded] = []
    pixels = 0
    for it in items:
        pending.append(it)
        pixels += it.sample.image.shape[0] * it.sample.image.shape[1]
        if len(pending) >= batch or pixels >= chunk_pixels:
            yield pending
            pending, pixels = [], 0
    if pending:
        yield pending


def run_stream(job: Job, stream: Stream, sink: Callable[[str, float], VideoOut], batch: int, chunk_pixels: int,
               overlap: bool = True) -> Outputs:
    """Run ``job`` over every frame of ``stream`` in chunks, each output frame written to
    the video ``sink(path, fps)`` opens for its path (a streaming writer), then
    :meth:`Job.finish`; the videos are committed only when the whole input worked (else
    discarded, and the error raised: a frame that fails fails its video). ``overlap``:
    frames are decoded one chunk ahead and written on a thread behind the network."""
    writers: dict[str, VideoOut] = {}
    pool = ThreadPoolExecutor(1, thread_name_prefix="eyepurify-video") if overlap else None
    pending: Future[None] | None = None

    def frames() -> Generator[Loaded, None, None]:
        from eyepurify.progress import progress_bar

        name = Path(str(stream.unit.video or stream.unit.source)).name
        for frame in progress_bar(stream.video.frames(), total=stream.video.declared, desc=f"{job.desc} {name}",
                                  unit="frame"):
            stream.read += 1
            yield Loaded(stream.unit, EyeSample(image=frame, source=stream.unit.source), stream=stream,
                         frame=stream.read - 1)

    def write(done: list[tuple[str, np.ndarray]]) -> None:
        for rel, image in done:
            writers[rel].write(image)

    source: Generator[Loaded, None, None] = read_ahead(frames(), batch) if overlap else frames()
    try:
        for chunk in chunks(source, batch, chunk_pixels):
            results = job.run(chunk)  # in order, no retry: a video's job may carry state from frame to frame
            for r in results:
                if isinstance(r, Exception):
                    raise r
            done: list[tuple[str, np.ndarray]] = []
            for it, r in zip(chunk, results, strict=True):
                for rel, image in job.outputs(it, r).files:
                    if rel not in writers:
                        writers[rel] = sink(rel, stream.video.fps)
                    done.append((rel, np.asarray(image)))
            if pending is not None:
                pending.result()
            pending = pool.submit(write, done) if pool is not None else None
            if pool is None:
                write(done)
        if pending is not None:
            pending.result()
        final = job.finish(stream)
        for w in writers.values():
            w.commit()
        if writers:  # how the video was written (H.264 or the fallback) and what became of its audio
            first = next(iter(writers.values()))
            final.fields.update(codec=first.codec, audio=first.audio)
        return final
    finally:
        source.close()
        if pool is not None:
            pool.shutdown(wait=True)
        with contextlib.suppress(Exception):
            stream.video.close()
        for w in writers.values():
            w.discard()


def fail_unit(manifest: Manifest, u: Unit, e: Exception) -> None:
    """Record ``u`` as failed with ``e`` (a run error is raised instead: it stops the run)."""
    if is_run_error(e):
        raise e
    manifest.mark(u.key, u.source, "failed", error=describe_failure(e, u.where))


Mark = tuple[str, str, dict[str, object]]


def placed(manifest: Manifest, unit: Unit, out: Outputs) -> tuple[list[tuple[Path, Payload]], list[Mark]]:
    """The files of ``out`` at their paths in ``--out`` and the manifest marks that record
    them (its ``more`` items claimed first; the unit's own mark last)."""
    files = [(manifest.target(rel), data) for rel, data in out.files]
    marks: list[Mark] = []
    for m in out.more:
        names = manifest.claim(m.source, m.wanted, m.layout)
        files += [(manifest.target(names[i]), data) for i, data in m.files]
        marks.append((names[0], m.source, fill_slots(m.fields, names)))
    marks.append((unit.key, unit.source, out.fields))
    return files, marks


def stream_report(manifest: Manifest, unit: Unit) -> None:
    """The report lines of a done video: frames without a face (written unchanged), and an
    input that ended before the frames its header declares (the run then exits 1)."""
    from eyepurify.engines.videofile import truncated

    it = manifest.items.get(unit.key, {})
    if it.get("status") != "done":
        return
    if it.get("frames_without_face"):
        manifest.fail_input(f"{unit.source}#frames", f"{unit.source}: no face found in frames "
                            f"{it['frames_without_face']} (written unchanged)")
    why = truncated(unit.source, int(it.get("frames") or 0), it.get("frames_declared"))
    if why:
        manifest.fail_input(f"{unit.source}#truncated", why)


# ---------------------------------------------------------------- reading ahead, writing in groups


_END = object()


def read_ahead(items: Iterator[T], ahead: int) -> Generator[T, None, None]:
    """``items`` as they come, pulled by one thread up to ``ahead`` in front of the consumer
    (an exception in ``items`` is raised here, in order). Closing the generator stops the thread."""
    import queue
    import threading

    q: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=max(1, ahead))
    stop = threading.Event()

    def pull() -> None:
        try:
            for it in items:
                while not stop.is_set():
                    try:
                        q.put((True, it), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((False, _END))
        except BaseException as e:  # handed to the consumer
            q.put((False, e))

    t = threading.Thread(target=pull, name="eyepurify-read", daemon=True)
    t.start()
    try:
        while True:
            ok, value = q.get()
            if ok:
                yield value  # type: ignore[misc]
            elif value is _END:
                return
            else:
                raise value  # type: ignore[misc]
    finally:
        stop.set()
        while t.is_alive():
            with contextlib.suppress(queue.Empty):
                q.get(timeout=0.05)
        t.join()


def encode_png(image: np.ndarray, level: int = PNG_LEVEL) -> bytes:
    """H×W×3 or H×W uint8 → PNG bytes at zlib ``level``."""
    if image.dtype != np.uint8:
        raise ValueError(f"encode_png expects uint8, got {image.dtype}")
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=level)
    return buf.getvalue()


def encode(payload: np.ndarray | bytes, level: int = PNG_LEVEL) -> bytes:
    """A job's payload as file bytes: an image as PNG at zlib ``level``, bytes as they are."""
    return payload if isinstance(payload, bytes) else encode_png(payload, level)


def _syncfs_fn() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        f = libc.syncfs
    except (OSError, AttributeError):
        return None
    f.argtypes = [ctypes.c_int]
    f.restype = ctypes.c_int
    return f


_SYNCFS = _syncfs_fn()


def write_group(files: list[tuple[Path, bytes]]) -> None:
    """Write each (path, data) atomically with one disk flush for the whole group: temp
    files (:func:`eyepurify.io.temp_file`: a killed run's are removed by the next), one
    ``syncfs`` of their file system (per-file fsync without it), then renames."""
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = temp_file(path.parent)
            temps.append((tmp, path))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                if _SYNCFS is None:
                    os.fsync(f.fileno())
            os.chmod(tmp, file_mode())
        if _SYNCFS is not None and temps:
            fd = os.open(temps[0][0], os.O_RDONLY)
            try:
                if _SYNCFS(fd) != 0:  # fall back to fsync of each file
                    for tmp, _ in temps:
                        _fsync_path(tmp)
            finally:
                os.close(fd)
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException as e:
        for tmp, _ in temps:
            if os.path.lexists(tmp):
                os.unlink(tmp)
        if isinstance(e, OSError) and e.errno is not None and files:
            named = dict(temps).get(e.filename, e.filename)  # a temp name means its target
            if named is None or e.filename in dict(temps):
                raise OSError(e.errno, e.strerror, str(named or files[0][0])) from None
        raise


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
