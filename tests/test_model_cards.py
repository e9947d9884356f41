"""Every shipped model has a card (docs/models/NAME.md) and `eyepurify models` shows them (issue 23, item 9)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import eyepurify
from eyepurify.modelcards import CARDS, FIELDS, cards, shipped_files

SRC = Path(eyepurify.__file__).resolve().parents[1]


def test_every_shipped_model_has_a_complete_card():
    found = cards()
    by_file = {c.fields.get("file"): c for c in found}
    missing = [f.name for f in shipped_files() if f.name not in by_file]
    assert not missing, f"shipped models without a card in {CARDS}: {missing}"
    for c in found:
        assert c.file.is_file(), f"{c.path}: its file {c.file.name} is not shipped"
        absent = [k for k in FIELDS if not c.fields.get(k)]
        assert not absent, f"{c.path}: missing {absent}"
        assert "## Known limitations" in c.body and "## Measured" in c.body


def test_models_command_lists_and_prints_cards():
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    r = subprocess.run([sys.executable, "-m", "eyepurify", "models"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    for f in shipped_files():
        assert f.stem in r.stdout
    assert "72×120" in r.stdout and "(no card)" not in r.stdout
    r = subprocess.run([sys.executable, "-m", "eyepurify", "models", "purifier"], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0 and "real data:" in r.stdout and "limitations:" in r.stdout and "eye scale: 72×120" in r.stdout
    r = subprocess.run([sys.executable, "-m", "eyepurify", "models", "nope"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "no model card named 'nope'" in r.stderr
