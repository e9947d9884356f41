"""H.264 MP4 output for videos, when PyAV is installed (``pip install 'eyepurify[video]'``:
its wheels bundle FFmpeg with libx264; nothing is downloaded at run time).

``.mp4``/``.m4v``/``.mov`` outputs are H.264 (yuv420p, CRF 18: browsers and players open
them) with the input's audio stream copied unchanged when it has one; the manifest records
``codec`` and ``audio`` ("copied", "none in the input", or why it was not copied). Without
PyAV, or for frames of odd width or height (H.264 in yuv420p needs even sizes, and outputs
keep the input's size), the OpenCV writer is used as before (MPEG-4 Part 2, no audio), and
one line on stderr says so once per run. ``.avi`` outputs stay Motion JPEG.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

H264_SUFFIXES = (".mp4", ".m4v", ".mov")
INSTALL = "pip install 'eyepurify[video]'"
_noted: set[str] = set()


def h264_available() -> bool:
    """True when PyAV is importable and its FFmpeg can encode H.264."""
    try:
        import av

        av.codec.Codec("libx264", "w")
        return True
    except Exception:
        return False


def note_once(key: str, line: str) -> None:
    """Print ``line`` on stderr once per process (per ``key``)."""
    if key not in _noted:
        _noted.add(key)
        print(f"eyepurify: note: {line}", file=sys.stderr, flush=True)


def audio_of(source: Path | str | None) -> str:
    """"none in the input" / "present" for a video file (needs PyAV), "unknown" without it."""
    if source is None:
        return "unknown"
    try:
        import av
    except ImportError:
        return "unknown"
    try:
        with av.open(str(source)) as c:
            return "present" if c.streams.audio else "none in the input"
    except Exception:
        return "unknown"


class H264Writer:
    """RGB frames → an H.264 MP4 at ``path`` (``fps``), the audio of ``source`` copied at close."""

    def __init__(self, path: str, fps: float, size: tuple[int, int], source: Path | str | None = None) -> None:
        import av

        self.av = av
        self.out = av.open(path, mode="w", format="mp4")
        rate = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(25)
        self.stream = self.out.add_stream("libx264", rate=rate)
        self.stream.width, self.stream.height = size[1], size[0]
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"crf": "18", "preset": "veryfast"}
        self.source = source
        self.audio = "none in the input"
        self._in: Any = None
        self._audio_in: Any = None
        self._audio_out: Any = None
        if source is not None:
            try:
                self._in = av.open(str(source))
                if self._in.streams.audio:
                    self._audio_in = self._in.streams.audio[0]
                    self._audio_out = self.out.add_stream_from_template(self._audio_in)
            except Exception as e:  # an input PyAV cannot open: no audio, said in the manifest
                self.audio = f"not copied ({type(e).__name__})"
                self._close_input()

    def _close_input(self) -> None:
        if self._in is not None:
            self._in.close()
            self._in = None

    def write(self, rgb: np.ndarray) -> None:
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self.stream.encode(frame):
            self.out.mux(packet)

    def close(self) -> None:
        """Flush the encoder, copy the audio packets, close the file."""
        for packet in self.stream.encode():
            self.out.mux(packet)
        if self._audio_out is not None:
            try:
                for packet in self._in.demux(self._audio_in):
                    if packet.dts is None:
                        continue
                    packet.stream = self._audio_out
                    self.out.mux(packet)
                self.audio = "copied"
            except Exception as e:
                self.audio = f"not copied ({type(e).__name__}: {e})"
        self._close_input()
        self.out.close()

    def abort(self) -> None:
        self._close_input()
        try:
            self.out.close()
        except Exception:
            pass


def h264_writer(target: Path, path: str, fps: float, size: tuple[int, int], source: Path | str | None) -> H264Writer | None:
    """An :class:`H264Writer` for ``target`` when it should be H.264 and can be (else None,
    with the one-line note)."""
    if target.suffix.lower() not in H264_SUFFIXES:
        return None
    if not h264_available():
        note_once("no-av", f"videos are written as MPEG-4 Part 2 without audio; for H.264 MP4 with audio: {INSTALL}")
        return None
    if size[0] % 2 or size[1] % 2:
        note_once("odd", f"{size[1]}×{size[0]} frames (odd size) are written as MPEG-4 Part 2 without audio: "
                  "H.264 needs even sizes")
        return None
    return H264Writer(path, fps, size, source)
