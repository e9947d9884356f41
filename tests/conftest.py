from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
# Commands default to the torch backend in tests (pinned outputs, no ONNX export per tiny
# model); tests/test_backends.py exercises auto/onnx/int8 explicitly, with its own cache dir.
os.environ.setdefault("EYEPURIFY_BACKEND", "torch")
# Exported ONNX models go to one temp cache per test session (shared by the tests and their
# subprocesses, removed at exit), never to the user's ~/.cache.
if "EYEPURIFY_CACHE_DIR" not in os.environ:
    os.environ["EYEPURIFY_CACHE_DIR"] = tempfile.mkdtemp(prefix="eyepurify-test-cache-")
    atexit.register(shutil.rmtree, os.environ["EYEPURIFY_CACHE_DIR"], True)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _process_placement():
    """Each test starts from the default placement (an in-process ``main(["... --precision bf16"])``
    would otherwise leave its setting to the next test)."""
    from eyepurify import device

    device.reset()
    yield
    device.reset()


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (research-only, never in the repo); tests using it skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (research-only data, not shipped)")
    return SHARED_DATA
