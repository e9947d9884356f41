"""The training-loop skeleton: run folder, resume rule, log.jsonl, checkpoints, stop on signal."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from eyepurify.errors import EyepurifyError
from eyepurify.train.checkpoint import save_checkpoint
from eyepurify.train.loop import CHECKPOINT_NAME, RunFolder, run_loop


def _steps(run: RunFolder) -> list[int]:
    return [json.loads(line)["step"] for line in run.log.read_text().splitlines()]


def test_resume_rule_and_legacy_name(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "r")
    assert run.start(resume=False) is None and run.checkpoint == tmp_path / "r" / CHECKPOINT_NAME
    with pytest.raises(EyepurifyError, match="checkpoint not found.*without --resume"):
        run.start(resume=True)
    run.write_config({"a": 1})
    save_checkpoint(tmp_path / "r" / "last.safetensors", torch.nn.Linear(1, 1), step=3)
    assert run.checkpoint == tmp_path / "r" / "last.safetensors"  # an old run keeps its file
    with pytest.raises(EyepurifyError, match="already has a checkpoint.*--resume"):
        run.start(resume=False)
    ckpt = run.start(resume=True)
    assert ckpt is not None and ckpt.step == 3


def test_loop_logs_checkpoints_and_cuts_the_log_on_resume(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "r")
    run.write_config({})
    saved: list[int] = []
    end = run_loop(run, 0, 5, lambda i: {"x": i}, saved.append, checkpoint_every=2, desc="t", progress=False)
    assert (end.step, end.interrupted) == (5, False) and saved == [2, 4, 5]
    assert [json.loads(line) for line in run.log.read_text().splitlines()][:2] == [{"step": 1, "x": 0}, {"step": 2, "x": 1}]
    saved.clear()
    end = run_loop(run, 3, 4, lambda i: {"x": i}, saved.append, checkpoint_every=2, desc="t", progress=False)
    assert _steps(run) == [1, 2, 3, 4] and saved == [4]


def test_a_signal_stops_after_the_step_with_a_checkpoint(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "r")
    run.write_config({})
    saved: list[int] = []

    def step(i: int) -> dict[str, int]:
        if i == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return {}

    end = run_loop(run, 0, 6, step, saved.append, checkpoint_every=100, desc="t", progress=False)
    assert (end.step, end.signum, end.interrupted) == (2, signal.SIGTERM, True)
    assert saved == [2] and _steps(run) == [1, 2]
