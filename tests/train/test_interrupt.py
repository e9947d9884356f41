"""Interrupted training: checkpoint only (no model file), exit 130 (SIGINT) / 143 (SIGTERM);
log.jsonl consistent after a kill and --resume."""

from __future__ import annotations

import json
import os
import signal

import pytest

import eyepurify.train.purifier as tp
import eyepurify.train.segmenter as ts
from eyepurify.cli import main
from eyepurify.train.loop import truncate_log

from ..synthetic_eyes import write_eye_folder
from .test_purifier import _folder


def _signal_at(monkeypatch: pytest.MonkeyPatch, module: object, name: str, at: int, sig: int, training_only: bool) -> None:
    """Send ``sig`` to this process at the ``at``-th call of ``module.name`` (training calls only)."""
    real = getattr(module, name)
    calls = {"n": 0}

    def wrapped(*a, **k):  # type: ignore[no-untyped-def]
        if not training_only or a[0].training:
            calls["n"] += 1
            if calls["n"] == at:
                os.kill(os.getpid(), sig)
        return real(*a, **k)

    monkeypatch.setattr(module, name, wrapped)


def _steps(run):  # type: ignore[no-untyped-def]
    return [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]


def test_train_ctrl_c_keeps_checkpoint_only_and_resumes(tmp_path, monkeypatch, capsys):
    c, s = _folder(tmp_path / "c", 4, 0), _folder(tmp_path / "s", 2, 1)
    run = tmp_path / "run"
    args = ["train", "--content", str(c), "--style", str(s), "--out", str(run), "--net", "test_tiny",
            "--backbone", "test_tiny", "--size", "16x24", "--steps", "4", "--batch", "2",
            "--checkpoint-every", "2", "--content-segmenter", "none", "--method", "johnson"]  # cheapest loss
    _signal_at(monkeypatch, tp, "purifier_terms", 2, signal.SIGINT, training_only=True)
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "interrupted at step 2 of 4" in err and "--resume" in err
    assert (run / "checkpoint.safetensors").exists() and not (run / "model.safetensors").exists()
    assert _steps(run) == [1, 2]
    monkeypatch.undo()
    with (run / "log.jsonl").open("a") as f:  # as if killed after logging steps the checkpoint lacks
        f.write(json.dumps({"step": 3, "total": 1.0}) + "\n" + '{"step": 4, "tot')
    assert main([*args, "--resume"]) == 0
    assert (run / "model.safetensors").exists()
    assert _steps(run) == [1, 2, 3, 4]


def test_truncate_log(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"step": i}) + "\n" for i in range(1, 7)) + '{"step": 7, "x"')
    truncate_log(log, 4)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3, 4]
    truncate_log(tmp_path / "missing.jsonl", 3)  # nothing to do


def test_train_segmenter_sigterm_exits_143(tmp_path, monkeypatch, capsys):
    data = write_eye_folder(tmp_path / "eyes", 6)
    run = tmp_path / "run"
    _signal_at(monkeypatch, ts.F, "cross_entropy", 2, signal.SIGTERM, training_only=False)
    rc = main(["train-segmenter", str(data), "--out", str(run), "--steps", "6", "--batch", "2",
               "--size", "24x40", "--model", "test_tiny", "--no-progress"])
    assert rc == 143
    assert "no model file" in capsys.readouterr().out
    assert (run / "checkpoint.safetensors").exists() and not (run / "model.safetensors").exists()
