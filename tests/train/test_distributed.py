"""Data-parallel training: micro-batches in one process, and 2 processes under torchrun (gloo)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from eyepurify.errors import EyepurifyError
from eyepurify.train.distributed import (
    Distributed,
    accumulate,
    check_micro_batches,
    from_env,
    part_seed,
)
from eyepurify.train.purifier import train_purifier
from eyepurify.train.segmenter import SegmenterConfig, train
from tests.train.test_purifier import _cfg, _folder


def _tiny_bn_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.BatchNorm2d(3), torch.nn.Dropout(0.5))


def test_accumulate_averages_gradients_and_batchnorm_updates_over_parts():
    x = torch.randn(4, 2, 5, 5, dtype=torch.float64)
    net = _tiny_bn_net().double()
    ref = _tiny_bn_net().double()
    start = [b.clone() for b in ref.buffers()]

    def run_part(p):
        y = net(x[2 * p : 2 * p + 2])
        return (y**2).mean(), {"loss": (y**2).mean()}

    terms = accumulate(net, net, run_part, 2, Distributed(), seed=3, step=7)

    grads, bufs, losses = [], [], []
    for p in range(2):  # each part from the same BN buffers, its dropout seeded by (seed, step, part)
        for b, s in zip(ref.buffers(), start, strict=True):
            b.copy_(s)
        ref.zero_grad()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(part_seed(3, 7, p))
            loss = (ref(x[2 * p : 2 * p + 2]) ** 2).mean()
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append([q.grad.clone() for q in ref.parameters()])
        bufs.append([b.clone() for b in ref.buffers()])
    for q, g0, g1 in zip(net.parameters(), *grads, strict=True):
        torch.testing.assert_close(q.grad, (g0 + g1) / 2)
    bn = net[1]
    torch.testing.assert_close(bn.running_mean, (bufs[0][0] + bufs[1][0]) / 2)
    torch.testing.assert_close(bn.running_var, (bufs[0][1] + bufs[1][1]) / 2)
    assert int(bn.num_batches_tracked) == 1  # as after one forward
    assert terms["loss"] == pytest.approx(sum(losses) / 2, rel=1e-12)


def test_one_part_in_one_process_is_a_plain_step_and_leaves_the_global_rng_alone():
    net = _tiny_bn_net()
    x = torch.randn(2, 2, 4, 4)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    accumulate(net, net, lambda p: ((net(x) ** 2).mean(), {}), 1, Distributed(), seed=0, step=0)
    assert not torch.equal(state, torch.get_rng_state())  # dropout drew from the global RNG, as before


def test_settings_errors_are_clear():
    with pytest.raises(EyepurifyError, match="divide --batch 5"):
        check_micro_batches(5, 2, Distributed())
    with pytest.raises(EyepurifyError, match="multiple of the 2 processes"):
        check_micro_batches(4, 1, Distributed(0, 2))
    check_micro_batches(4, 4, Distributed(1, 2))
    with pytest.raises(EyepurifyError, match="torchrun"):
        from_env({"WORLD_SIZE": "2", "RANK": "2"})
    assert from_env({}) == Distributed(0, 1)


# ---------------------------------------------------------------- 2 processes under torchrun


def _torchrun(args, tmp_path, name):
    """Run ``eyepurify ARGS`` in 2 gloo processes; returns the completed process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "--log-dir", str(tmp_path / f"torchrun_{name}"), "-m", "eyepurify", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def data(tmp_path):
    return _folder(tmp_path / "content", 6, 0), _folder(tmp_path / "style", 2, 1)


def _purifier_args(data, out, steps, resume=False):
    c, s = data
    args = ["train", "--content", str(c), "--style", str(s), "--net", "small", "--backbone", "test_tiny",
            "--size", "16x24", "--batch", "4", "--steps", str(steps), "--val-every", "2", "--sample-every", "2",
            "--checkpoint-every", "2", "--content-segmenter", "none", "--out", str(out)]
    return args + (["--resume"] if resume else [])


def _log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_two_processes_train_the_purifier_as_one_process_with_two_micro_batches(data, tmp_path):
    ddp = tmp_path / "ddp"
    done = _torchrun(_purifier_args(data, ddp, 4), tmp_path, "a")
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((ddp / "config.json").read_text())["micro_batches"] == 2  # default: one part per process

    one = train_purifier(_cfg(data, net="small", batch=4, micro_batches=2, content_segmenter=None), tmp_path / "one",
                         progress=False)
    a, b = load_file(ddp / "model.safetensors"), load_file(one)
    assert a.keys() == b.keys()
    # A conv bias followed by BatchNorm gets a gradient that is zero up to rounding, which Adam
    # scales up to full-size steps: those biases (and the running means they shift) differ by
    # ~lr per step between any two summation orders. They do not change training-mode outputs,
    # so the per-step losses below still agree to 1e-5.
    convs = {k[: -len(".weight")] for k in a if k.endswith(".weight") and a[k].ndim == 4}
    last = "decoder.6.1"  # the output conv, not followed by BatchNorm
    assert last in convs
    free = {f"{c}.bias" for c in convs - {last}}
    compared = [k for k in a if k not in free and not k.endswith("running_mean")]
    assert f"{last}.bias" in compared and len(compared) > 30
    for k in compared:  # weights, BatchNorm affine and variances, up to the order of float sums
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-5, msg=k)
    la, lb = _log(ddp), _log(tmp_path / "one")
    assert [r["step"] for r in la] == [1, 2, 3, 4]  # one log, written by rank 0 only
    for ra, rb in zip(la, lb, strict=True):
        assert ra["objective"] == pytest.approx(rb["objective"], rel=1e-5)
        assert ra["attention_bce"] == pytest.approx(rb["attention_bce"], rel=1e-5)

    # resume a 2-process run: 2 steps, then --resume to 4, equals the straight run byte for byte
    part = tmp_path / "part"
    assert _torchrun(_purifier_args(data, part, 2), tmp_path, "b").returncode == 0
    done = _torchrun(_purifier_args(data, part, 4, resume=True), tmp_path, "c")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (part / "model.safetensors").read_bytes() == (ddp / "model.safetensors").read_bytes()


def test_two_processes_train_the_segmenter_as_one_process_with_two_micro_batches(data, tmp_path):
    content, _ = data
    ddp = tmp_path / "seg_ddp"
    args = ["train-segmenter", str(content), "--out", str(ddp), "--steps", "3", "--batch", "4", "--size", "16x24",
            "--model", "test_tiny", "--val-every", "3", "--checkpoint-every", "2", "--no-progress"]
    done = _torchrun(args, tmp_path, "s")
    assert done.returncode == 0, done.stderr[-3000:]
    cfg = SegmenterConfig(data=(str(content),), steps=3, batch=4, size=(16, 24), model="test_tiny", val_every=3,
                          checkpoint_every=2, micro_batches=2)
    result = train(cfg, tmp_path / "seg_one", progress=False)
    a, b = load_file(ddp / "model.safetensors"), load_file(result.out / "model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    assert [r["loss"] for r in _log(ddp)] == pytest.approx([r["loss"] for r in result.history], rel=1e-5)


def test_train_simgan_refuses_several_processes(tmp_path):
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "0", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "eyepurify", "train-simgan", "--synthetic", str(tmp_path),
                           "--real", str(tmp_path), "--out", str(tmp_path / "r")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "without torchrun" in done.stderr
