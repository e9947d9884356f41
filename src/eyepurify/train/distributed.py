"""Data-parallel training across processes (``torchrun``, gloo backend) and micro-batches.

A training step's batch of B samples is split into M equal micro-batches (``micro_batches``);
each is run forward and backward on its own (BatchNorm sees B / M samples, dropout draws
from a generator seeded by (seed, step, part)) and the gradients are averaged. Under
``torchrun --nproc_per_node W`` the M parts are dealt out to the W processes (part p to
rank p mod W) and PyTorch's DistributedDataParallel averages the gradients across them,
so a W-process run computes the same step as one process with ``micro_batches = M``, up
to the order of float sums. BatchNorm running statistics are averaged over the parts
(each part's update starts from the same buffers), so every rank holds the same model.

With one process and M = 1 nothing here changes a step (the code path before this module).
Rank 0 writes the run folder; the others only compute.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from eyepurify.device import Placement, current, ddp_backend, fork_rng
from eyepurify.errors import EyepurifyError


@dataclass(frozen=True)
class Distributed:
    """This process's place in a data-parallel run: ``rank`` of ``world`` processes."""

    rank: int = 0
    world: int = 1
    #: where this rank's tensors live (collectives on NCCL need them on its GPU)
    device: str = "cpu"

    @property
    def main(self) -> bool:
        """True on the process that writes files and shows progress (rank 0)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def parts(self, n_parts: int) -> list[int]:
        """The micro-batch indices this rank runs, of ``n_parts``."""
        return list(range(self.rank, n_parts, self.world))

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def any(self, flag: bool) -> bool:
        """True when ``flag`` is true on any rank (every rank must call it)."""
        if not self.active:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item() > 0)

    def sum_(self, t: Tensor) -> Tensor:
        """Sum ``t`` over the ranks in place (every rank must call it); returns ``t``."""
        if self.active:
            torch.distributed.all_reduce(t)
        return t


def from_env(env: dict[str, str] | None = None, placement: Placement | None = None) -> Distributed:
    """The run's :class:`Distributed` from ``torchrun``'s variables (WORLD_SIZE, RANK),
    joining the process group on first use (NCCL when ``placement``, default the process's,
    is CUDA: each rank on the GPU of its LOCAL_RANK; gloo otherwise); one process when they
    are unset."""
    env = dict(os.environ) if env is None else env
    try:
        world, rank = int(env.get("WORLD_SIZE", "1")), int(env.get("RANK", "0"))
    except ValueError:
        raise EyepurifyError("WORLD_SIZE and RANK must be integers (start multi-process training with torchrun)") from None
    if world < 1 or not 0 <= rank < world:
        raise EyepurifyError(f"RANK {rank} does not fit WORLD_SIZE {world} (start multi-process training with torchrun)")
    device = (placement or current()).device
    if world > 1 and not torch.distributed.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.distributed.init_process_group(ddp_backend(device), timeout=datetime.timedelta(minutes=30))
    return Distributed(rank, world, str(device))


def process_count(env: dict[str, str] | None = None) -> int:
    """How many processes ``torchrun`` started (WORLD_SIZE; 1 without torchrun)."""
    env = dict(os.environ) if env is None else env
    try:
        return max(1, int(env.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def check_micro_batches(batch: int, micro_batches: int, dist: Distributed) -> None:
    """EyepurifyError unless ``micro_batches`` splits ``batch`` evenly and is a multiple of the process count."""
    if micro_batches < 1 or batch % micro_batches:
        raise EyepurifyError(f"--micro-batches {micro_batches} must be ≥ 1 and divide --batch {batch}")
    if micro_batches % dist.world:
        raise EyepurifyError(
            f"--micro-batches {micro_batches} must be a multiple of the {dist.world} processes "
            f"(start a number of processes that divides {micro_batches}, or pass --micro-batches "
            f"{dist.world * max(1, micro_batches // dist.world)} to a new run)"
        )


def wrap(module: nn.Module, dist: Distributed) -> nn.Module:
    """``module`` in DistributedDataParallel when several processes run (buffers are not
    synced at each forward: :func:`accumulate` averages them itself), else ``module``."""
    if not dist.active:
        return module
    ids = [torch.device(dist.device).index] if dist.device.startswith("cuda") else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, forward_sync_buffers=False)


def part_slice(batch: int, n_parts: int, part: int) -> slice:
    """The samples of micro-batch ``part`` in a batch of ``batch`` split into ``n_parts``."""
    size = batch // n_parts
    return slice(part * size, (part + 1) * size)


def part_seed(seed: int, step: int, part: int) -> int:
    """Seed of the global RNG (dropout) for micro-batch ``part`` of step ``step``."""
    return (seed * 1_000_003 + step * 1_009 + part) % (2**63)


def _float_buffers(module: nn.Module) -> list[Tensor]:
    return [b for b in module.buffers() if b.is_floating_point()]


def accumulate(
    model: nn.Module,
    wrapped: nn.Module,
    run_part: Callable[[int], tuple[Tensor, dict[str, Tensor]]],
    n_parts: int,
    dist: Distributed,
    seed: int,
    step: int,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, float]:
    """Forward and backward of this rank's micro-batches of one step; returns every
    logged term averaged over all ``n_parts`` parts (all ranks). Gradients end up as the
    mean over the parts on every rank; call the optimiser after it.

    run_part(p): the objective of part p (computed through ``wrapped``, so DDP sees the
    forward) and named scalar terms to log. ``model``: the bare module (its buffers).
    One process with ``n_parts == 1``: one plain forward/backward, global RNG untouched.
    ``scaler``: fp16 gradient scaling (the backward runs on the scaled objective).
    """
    scale = scaler.scale if scaler is not None and scaler.is_enabled() else (lambda t: t)
    if n_parts == 1 and not dist.active:
        objective, terms = run_part(0)
        scale(objective).backward()
        return {k: float(v.detach()) for k, v in terms.items()}
    mine = dist.parts(n_parts)
    every = list(model.buffers())  # integer ones (BN's batch count) end as after one forward
    start = [b.detach().clone() for b in every]
    buffers = _float_buffers(model)
    buffer_sum = [torch.zeros_like(b) for b in buffers]
    names: list[str] = []
    term_sum: Tensor | None = None
    for k, part in enumerate(mine):
        for b, s in zip(every, start, strict=True):
            b.copy_(s)
        sync = contextlib.nullcontext() if k == len(mine) - 1 or not dist.active else wrapped.no_sync()  # type: ignore[operator]
        with sync, _seeded_rng(part_seed(seed, step, part)):
            objective, terms = run_part(part)
            scale(objective * (dist.world / n_parts)).backward()
        values = torch.stack([v.detach().reshape(()).to(torch.float64) for v in terms.values()])
        if term_sum is None:
            names, term_sum = list(terms), values
        else:
            term_sum += values
        for acc, b in zip(buffer_sum, buffers, strict=True):
            acc += b.detach()
    assert term_sum is not None
    flat = torch.cat([term_sum] + [b.reshape(-1).to(torch.float64) for b in buffer_sum])
    dist.sum_(flat)
    flat /= n_parts
    out, pos = flat[: len(names)], len(names)
    for b in buffers:
        b.copy_(flat[pos : pos + b.numel()].reshape(b.shape).to(b.dtype))
        pos += b.numel()
    return {k: float(v) for k, v in zip(names, out, strict=True)}


@contextlib.contextmanager
def _seeded_rng(seed: int) -> Iterator[None]:
    with fork_rng():  # the CPU's RNG, and the GPUs' when training there
        torch.manual_seed(seed)
        yield


def split(tensors: Sequence[Tensor], n_parts: int, part: int) -> list[Tensor]:
    """Micro-batch ``part`` of each batch tensor (first dimension split into ``n_parts``)."""
    return [t[part_slice(t.shape[0], n_parts, part)] for t in tensors]


def shutdown(dist: Distributed) -> None:
    """Leave the process group (after the last collective of a run)."""
    if dist.active and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
