"""How a batch run is carried out (never what it computes): the engine's options."""

from __future__ import annotations

from dataclasses import dataclass

#: Decoded pixels held at once before a forward pass: a chunk closes early when it reaches
#: this, so memory stays bounded however large the photos (each is processed at the eye scale).
CHUNK_PIXELS = 16_000_000
#: The manifest (all items, rewritten whole) is saved at most this often while ``--io
#: threads`` runs, and at the end: items done since the last save are redone by --resume.
MANIFEST_EVERY_S = 2.0


@dataclass(frozen=True)
class EngineOptions:
    """How :func:`eyepurify.engines.run.run_batch` runs a job.

    io: ``threads`` decodes ahead of the forward passes (:func:`eyepurify.engines.pipeline.prefetch`;
    one decoding thread for datasets that hold an open file; a video's frames one chunk
    ahead) and encodes and writes behind them (:class:`eyepurify.engines.pipeline.GroupWriter`:
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
