"""One training-loop skeleton for every trainer (purifier, segmenter, SimGAN refiner).

Run folder: ``config.json`` (the run's settings), ``checkpoint.safetensors`` (training state;
runs written before this module named it ``last.safetensors``, which is still found and
resumed), ``log.jsonl`` (one JSON record per optimisation step, ``{"step": n, ...}``) and,
when every step ran, the model file. The resume rule: a new run refuses a folder that holds
a checkpoint, ``--resume`` needs one; on resume the log is cut back to the checkpoint's
step, so no step is logged twice. The loop shows a progress bar with rate and ETA, writes a
checkpoint every ``checkpoint_every`` steps, and on a first SIGINT/SIGTERM finishes the
current step, writes a checkpoint and stops (the trainer then reports exit 130 / 143).
"""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eyepurify.errors import EyepurifyError
from eyepurify.io import write_json, write_text
from eyepurify.progress import progress_bar
from eyepurify.train.checkpoint import Checkpoint, StopOnSignal, load_checkpoint

CHECKPOINT_NAME = "checkpoint.safetensors"
LEGACY_CHECKPOINT_NAMES = ("last.safetensors",)  # segmenter runs from before the shared loop
LOG_NAME = "log.jsonl"
CONFIG_NAME = "config.json"


class RunFolder:
    """A training run's folder (see the module docstring for its files)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def log(self) -> Path:
        return self.path / LOG_NAME

    @property
    def checkpoint(self) -> Path:
        """Where the checkpoint is written: the one found (a legacy name keeps its name), else the new name."""
        return self.existing_checkpoint() or self.path / CHECKPOINT_NAME

    def existing_checkpoint(self) -> Path | None:
        """The run's checkpoint file, under the current or a legacy name, or None."""
        for name in (CHECKPOINT_NAME, *LEGACY_CHECKPOINT_NAMES):
            if (self.path / name).is_file():
                return self.path / name
        return None

    def start(self, resume: bool) -> Checkpoint | None:
        """Apply the resume rule; the checkpoint to continue from (None for a new run)."""
        found = self.existing_checkpoint()
        if found is not None and not resume:
            raise EyepurifyError(
                f"{self.path}: this run folder already has a checkpoint (pass --resume to continue it, "
                "or choose another --out)"
            )
        if resume:
            if found is None:
                raise EyepurifyError(f"{self.path / CHECKPOINT_NAME}: checkpoint not found; nothing to resume "
                                     "(train without --resume)")
            return load_checkpoint(found)
        return None

    def write_config(self, config: dict[str, Any]) -> None:
        """Create the folder and write ``config.json``."""
        self.path.mkdir(parents=True, exist_ok=True)
        write_json(self.path / CONFIG_NAME, config)


def truncate_log(path: Path, step: int) -> None:
    """Keep the records of ``log.jsonl`` up to ``step`` (the checkpoint a run resumes from):
    steps logged after it, and a line torn by a kill, are dropped, so resuming never
    logs a step twice."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            break
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), int) or rec["step"] > step:
            break
        kept.append(line + "\n")
    write_text(path, "".join(kept))


@dataclass
class LoopEnd:
    """How a loop ended: the steps done and the signal that stopped it (0: ran to the end)."""

    step: int
    signum: int = 0

    @property
    def interrupted(self) -> bool:
        return self.signum != 0


def run_loop(
    run: RunFolder | None,
    start: int,
    total: int,
    step: Callable[[int], dict[str, Any]],
    checkpoint: Callable[[int], None],
    *,
    checkpoint_every: int,
    desc: str,
    progress: bool | None,
    postfix: Callable[[dict[str, Any]], dict[str, str]] | None = None,
    unit: str = "step",
    agree: Callable[[bool], bool] | None = None,
) -> LoopEnd:
    """Run ``step(i)`` for i = start .. total-1 (it does optimisation step i + 1 and returns
    its log record, which gets ``"step": i + 1`` first), appending each record to
    ``log.jsonl``; ``checkpoint(n)`` after every ``checkpoint_every``-th step, on a signal
    and at the end. ``run`` None: no files (an in-memory run). ``progress``: True a bar on
    stderr, None only on a terminal, False never. ``agree(stop_requested) -> stop`` is
    called after every step when given (data-parallel runs: every process stops after the
    same step when any of them got a signal).
    """
    if run is not None:
        truncate_log(run.log, start)  # also: a run killed before its first checkpoint starts over
    bar = progress_bar(range(start, total), total=total, initial=start, desc=desc, unit=unit,
                       disable=None if progress is None else not progress)
    done, signum = start, 0
    log = run.log.open("a") if run is not None else contextlib.nullcontext(None)
    with StopOnSignal() as stop, log as out, bar:
        for i in bar:
            rec = {"step": i + 1, **step(i)}
            done = i + 1
            if out is not None:
                out.write(json.dumps(rec) + "\n")
                out.flush()
            if postfix is not None:
                bar.set_postfix(postfix(rec), refresh=False)
            requested = stop.requested if agree is None else agree(stop.requested)
            if requested and done < total:
                signum = stop.signum or signal.SIGINT
                break
            if done % checkpoint_every == 0 and done < total:
                checkpoint(done)
    checkpoint(done)
    return LoopEnd(done, signum)
