"""The lock (requirements/lock.txt) and pyproject.toml agree, and this environment is the lock.

Re-lock with `bash .ci/lock` after changing a dependency in pyproject.toml.
"""

from __future__ import annotations

import importlib.metadata as md
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
TORCH_PIN = ROOT / "requirements" / "torch.txt"


def locked() -> dict[str, str]:
    """name → version of every package in the lock (each must carry hashes)."""
    text = LOCK.read_text()
    out: dict[str, str] = {}
    for block in re.split(r"\n(?=\S)", text):
        m = re.match(r"([A-Za-z0-9._-]+)==(\S+)", block)
        if not m:
            continue
        assert "--hash=sha256:" in block, f"{m.group(1)} has no hash in {LOCK.name}"
        out[canonicalize_name(m.group(1))] = m.group(2)
    return out


def project_requirements() -> list[Requirement]:
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in proj["dependencies"]]
    for extra in proj.get("optional-dependencies", {}).values():
        reqs += [Requirement(r) for r in extra]
    return reqs


def torch_pin() -> str:
    return Requirement(TORCH_PIN.read_text().split("#")[0].strip()).specifier.__str__().lstrip("=")


def test_every_project_requirement_is_locked_within_its_range():
    lock = locked()
    for req in project_requirements():
        name = canonicalize_name(req.name)
        version = torch_pin() if name == "torch" else lock.get(name)
        assert version is not None, f"{req} is in pyproject.toml but not in {LOCK.name}: run `bash .ci/lock`"
        assert req.specifier.contains(version, prereleases=True), (
            f"{LOCK.name} pins {name}=={version}, outside pyproject.toml's {req}: run `bash .ci/lock`"
        )


def _closure(reqs: list[Requirement]) -> set[str]:
    """Names of the installed distributions that ``reqs`` pull in (markers evaluated)."""
    seen: set[str] = set()
    todo = [(r, "") for r in reqs]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        new_extras = [e for e in req.extras if (name, e) not in seen]
        if name in seen and not new_extras:
            continue
        seen.add(name)
        for e in req.extras:
            seen.add((name, e))  # type: ignore[arg-type]
        for r in md.requires(req.name) or []:
            for e in ["", *req.extras]:
                todo.append((Requirement(r), e))
    return {s for s in seen if isinstance(s, str)}


def test_lock_holds_exactly_what_the_project_pulls_in():
    lock = set(locked())
    need = _closure(project_requirements()) - {"torch"}
    assert not need - lock, f"needed but not locked: {sorted(need - lock)}; run `bash .ci/lock`"
    assert not lock - need, f"locked but not needed: {sorted(lock - need)}; run `bash .ci/lock`"


def test_this_environment_is_the_lock():
    wrong = []
    for name, version in locked().items():
        try:
            have = md.version(name)
        except md.PackageNotFoundError:
            have = "missing"
        if have != version:
            wrong.append(f"{name} {have} (lock {version})")
    torch = md.version("torch")
    if torch.split("+")[0] != torch_pin().split("+")[0]:
        wrong.append(f"torch {torch} (pin {torch_pin()})")
    assert not wrong, "installed versions differ from the lock (install as README line 1 does): " + ", ".join(wrong)
