"""Videos in and out of the batch commands, checked: a video is written to a temp file beside
its target and renamed into place only once every frame reads back (OpenCV's writer reports
no write errors: a full disk would otherwise leave a torn video under its final name), and an
input that ends before the frame count its header declares is reported as truncated."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from eyepurify.errors import DataError, EyepurifyError
from eyepurify.io import file_mode, fsync_file, max_pixels, temp_file


def declared_frames(cap: object) -> int | None:
    """The frame count an opened ``cv2.VideoCapture`` declares (None: unknown)."""
    import cv2

    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))  # type: ignore[attr-defined]
    return n if n > 0 else None


def truncated(path: object, read: int, declared: int | None) -> str:
    """The report line for a video that ended early ("" when it did not)."""
    if declared is None or read >= declared:
        return ""
    return (f"{path}: truncated: {read} of the {declared} frames its header declares could be read "
            "(the frames read were written; re-export or re-download the video)")


def readable_frames(path: str) -> int:
    """How many frames of the video at ``path`` can be read back (demuxed, not decoded)."""
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            return 0
        n = 0
        while cap.grab():
            n += 1
        return n
    finally:
        cap.release()


class VideoIn:
    """A video opened for reading (frames as RGB uint8): refused with a DataError when it
    cannot be opened or its frames are over the pixel limit (:func:`eyepurify.io.max_pixels`)."""

    def __init__(self, path: Path) -> None:
        import cv2

        self.cv2, self.path = cv2, path
        self.cap = cv2.VideoCapture(str(path))
        if not self.cap.isOpened():
            raise DataError(path, "cannot open video", "check the file is a readable video")
        w, h = int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if w * h > max_pixels():
            self.cap.release()
            raise DataError(path, f"video frames are {w}×{h}, over the limit of {max_pixels():,} pixels",
                            "downscale it, or raise the limit with --max-pixels")
        #: frames per second (25 when the file does not say), (width, height), the frame count its header declares
        self.fps: float = self.cap.get(cv2.CAP_PROP_FPS) or 25.0
        self.size = (w, h)
        self.declared = declared_frames(self.cap)

    def frames(self) -> Iterator[np.ndarray]:
        """The frames as H×W×3 RGB uint8, until the first that cannot be read."""
        while True:
            ok, frame = self.cap.read()
            if not ok:
                return
            yield self.cv2.cvtColor(frame, self.cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self.cap.release()


class VideoOut:
    """A video written to a temp file beside ``target`` (created by the caller), checked,
    flushed and renamed over it by :meth:`commit`; :meth:`discard` removes the temp file."""

    def __init__(self, target: Path, fps: float, source: Path | str | None = None) -> None:
        import cv2

        self.cv2, self.target, self.fps, self.source = cv2, target, fps, source
        self.h264: Any = None  # .mp4 with PyAV installed: H.264 + the source's audio (eyepurify.videocodec)
        fd, self.tmp = temp_file(target.parent, target.suffix.lower())
        os.close(fd)
        codec = "mp4v" if target.suffix.lower() in (".mp4", ".m4v", ".mov") else "MJPG"
        self.fourcc = cv2.VideoWriter_fourcc(*codec)  # type: ignore[attr-defined]
        self.writer: Any = None
        self.frames = 0

    @property
    def codec(self) -> str:
        mjpg = self.cv2.VideoWriter_fourcc(*"MJPG")  # type: ignore[attr-defined]
        return "h264" if self.h264 is not None else "mjpeg" if self.fourcc == mjpg else "mpeg4"

    @property
    def audio(self) -> str:
        """What became of the source's audio (recorded in the manifest)."""
        if self.h264 is not None:
            return self.h264.audio
        from eyepurify.videocodec import audio_of

        found = audio_of(self.source)
        return "not copied (OpenCV writer)" if found == "present" else found if found != "unknown" else \
            "not copied (install eyepurify[video] to copy it)"

    def write(self, rgb: np.ndarray) -> None:
        if self.writer is None and self.h264 is None and self.frames == 0:
            from eyepurify.videocodec import h264_writer

            self.h264 = h264_writer(self.target, self.tmp, self.fps, rgb.shape[:2], self.source)
        if self.h264 is not None:
            self.h264.write(rgb)
            self.frames += 1
            return
        if self.writer is None:
            self.writer = self.cv2.VideoWriter(self.tmp, self.fourcc, self.fps, (rgb.shape[1], rgb.shape[0]))
            if not self.writer.isOpened():
                raise DataError(self.target, "cannot write video with this codec", "convert the input to .avi")
        self.writer.write(self.cv2.cvtColor(rgb, self.cv2.COLOR_RGB2BGR))
        self.frames += 1

    def commit(self) -> None:
        """Close the writer, check every frame reads back (else EyepurifyError naming the
        target: nothing is renamed), flush to disk and rename into place."""
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.h264 is not None:
            self.h264.close()
        back = readable_frames(self.tmp)
        if back != self.frames:
            raise EyepurifyError(
                f"{self.target}: the video was not written completely ({back} of {self.frames} frames read back; "
                "the disk may be full): free some space, then rerun with --resume")
        fsync_file(self.tmp)
        os.chmod(self.tmp, file_mode())
        os.replace(self.tmp, self.target)

    def discard(self) -> None:
        if self.h264 is not None and os.path.lexists(self.tmp):
            self.h264.abort()
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if os.path.lexists(self.tmp):
            os.unlink(self.tmp)
