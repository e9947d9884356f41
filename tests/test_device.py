"""Device selection and placement (issue 21), proven on the CPU: the device helper's rules,
``--device`` on every network-running command (refused before any output exists), the
pipeline with ``device="cpu"`` passed explicitly through every layer, and forward/backward
passes on the ``meta`` device under a mode that fails on any tensor living elsewhere (what a
forgotten ``device=`` would do on a GPU)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from eyepurify import device as dv
from eyepurify.cli import build_parser, main
from eyepurify.device import (
    DeviceError,
    DeviceNet,
    Placement,
    make_placement,
    place,
    resolve_device,
    resolve_precision,
)

NO_CUDA = not torch.cuda.is_available()
#: every command that runs a network (issue 21), and every bench
NETWORK_COMMANDS = ["purify", "segment", "train", "train-segmenter", "train-gaze", "distill", "train-simgan",
                    "optimize", "demo"]


class DeviceCheck(TorchFunctionMode):
    """Records every torch call whose output holds a tensor on another device than ``device``."""

    def __init__(self, device: str) -> None:
        super().__init__()
        self.device = device
        self.bad: list[tuple[str, str, tuple[int, ...]]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != self.device:
                self.bad.append((getattr(func, "__name__", str(func)), str(t.device), tuple(t.shape)))
        return out


# ---------------------------------------------------------------- the helper's rules


def test_auto_and_cpu_resolve_here():
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type in (want, "mps")
    assert resolve_device(None).type in (want, "mps")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_missing_cuda_names_the_fix(spec):
    with pytest.raises(DeviceError, match="use --device cpu") as e:
        resolve_device(spec)
    assert "\n" not in str(e.value) and e.value.exit_code == 2


@pytest.mark.parametrize("spec", ["tpu", "cuda:x", "cuda:-1", "gpu"])
def test_bad_device_names(spec):
    with pytest.raises(DeviceError):
        resolve_device(spec)


def test_precision_rules():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision(None, cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(DeviceError, match="GPUs only"):
        resolve_precision("fp16", cpu)
    with pytest.raises(DeviceError, match="unknown precision"):
        resolve_precision("int4", cpu)


def test_cpu_fp32_places_nothing():
    """On the CPU in fp32 the networks are the modules themselves: today's code path."""
    net = torch.nn.Conv2d(3, 3, 1)
    p = make_placement("cpu")
    assert p.trivial and p.dtype is None and not p.channels_last
    assert place(net, p) is net
    x = torch.rand(2, 3, 4, 4)
    assert p.to(x) is x and p.input(x) is x
    assert dv.cli_args(p) == ["--device", "cpu", "--precision", "fp32"]
    scaler = p.grad_scaler()
    assert not scaler.is_enabled()


def test_placement_moves_nested_batches_and_keeps_none():
    p = make_placement("meta")
    x, (y, z), d = p.to((torch.zeros(2), (torch.ones(1), None), {"a": torch.zeros(3)}))
    assert x.device.type == y.device.type == d["a"].device.type == "meta" and z is None
    g = make_placement("cpu").generator(3)
    assert torch.equal(torch.rand(4, generator=g), torch.rand(4, generator=torch.Generator().manual_seed(3)))


def test_ddp_backend_follows_the_device():
    assert dv.ddp_backend(torch.device("cpu")) == "gloo"
    assert dv.ddp_backend(torch.device("cuda", 0)) == "nccl"


def test_ray_workers_get_gpus_only_with_cuda():
    dv.configure("cpu", "auto")
    assert dv.gpus_per_worker() == 0 and dv.worker_settings()["device"] == "cpu"
    dv.configure("cpu", "auto", gpus_per_worker=0.5)
    assert dv.gpus_per_worker() == 0.5 and dv.worker_settings()["device"] == "cuda"
    with pytest.raises(DeviceError):
        dv.configure("cpu", "auto", gpus_per_worker=-1)


def test_the_run_config_carries_the_device_to_its_networks_and_to_ray_workers():
    """PurifyConfig / SegmentConfig (the engines' frozen config, also the Ray payload) place
    what they build; portable() (what a Ray worker is sent) carries the worker's placement."""
    from eyepurify.engines.jobs import PurifyConfig, SegmentConfig
    from eyepurify.purify import Purifier
    from eyepurify.segment import Segmenter

    bf16 = Placement(torch.device("cpu"), "bf16")
    p = Purifier.from_config(PurifyConfig(model="v1", segmenter="default", eye_scale="off", device="cpu",
                                          precision="bf16"))
    assert p.placement == bf16 and p.segmenter.placement == bf16
    assert all(isinstance(e.net, DeviceNet) and e.net.placement == bf16 for e in p.nets)
    seg = Segmenter.from_config(SegmentConfig(device="cpu", precision="bf16"))
    assert seg.placement == bf16 and isinstance(seg.model, DeviceNet)
    assert Segmenter.from_config(SegmentConfig()).placement == dv.current()  # None: the process's
    dv.configure("cpu", "auto")
    assert SegmentConfig(device="cpu", precision="bf16").portable().precision == "bf16"
    sent = PurifyConfig().portable()
    assert (sent.device, sent.precision, sent.compile) == ("cpu", "fp32", False)
    dv.configure("cpu", "auto", gpus_per_worker=0.5)  # workers given GPUs use the one Ray assigned them
    assert SegmentConfig().portable().device == "cuda" and dv.worker_gpus({"device": "cuda"}) == 0.5
    assert dv.worker_gpus({"device": "cpu"}) == 0


def test_command_line_device_reaches_the_run_config():
    from eyepurify.commands import purify as purify_cmd
    from eyepurify.commands import segment as segment_cmd

    parser = build_parser(None)
    args = parser.parse_args(["purify", "x.png", "--out", "o", "--device", "cpu", "--precision", "bf16", "--compile"])
    cfg = purify_cmd.config(args, "torch")
    assert (cfg.device, cfg.precision, cfg.compile) == ("cpu", "bf16", True)
    args = parser.parse_args(["segment", "x.png", "--out", "o", "--device", "cpu", "--precision", "fp32"])
    cfg2 = segment_cmd.config(args, "torch")
    assert (cfg2.device, cfg2.precision, cfg2.compile) == ("cpu", "fp32", False)


def test_scaled_segmenters_place_each_segmenter():
    from eyepurify.purify import _default_segmenter
    from eyepurify.segment import ScaledSegmenters, Segmenter

    bf16 = Placement(torch.device("cpu"), "bf16")
    a, b = Segmenter.from_pretrained(None), Segmenter.from_pretrained(None)
    both = ScaledSegmenters([a, b], device=bf16)
    assert both.placement == bf16
    assert all(s.placement == bf16 and isinstance(s.model, DeviceNet) for s in both.segmenters)
    seg = _default_segmenter("segmenter.safetensors", ("segmenter.safetensors",), bf16)
    assert isinstance(seg, ScaledSegmenters)
    assert all(s.placement == bf16 and isinstance(s.model, DeviceNet) for s in seg.segmenters)
    back = ScaledSegmenters(seg.segmenters, device="cpu")  # back to the CPU in fp32: the plain network
    assert all(s.placement.trivial and not isinstance(s.model, DeviceNet) for s in back.segmenters)


# ---------------------------------------------------------------- the command line


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_network_command_takes_device_precision_compile():
    subs = _subparsers(build_parser(None))
    for name in NETWORK_COMMANDS:
        opts = subs[name]._option_string_actions
        assert {"--device", "--precision", "--compile"} <= set(opts), name
    for name, bp in _subparsers(subs["bench"]).items():
        assert "--device" in bp._option_string_actions, f"bench {name}"
    for name in ("purify", "segment"):
        assert "--gpus-per-worker" in subs[name]._option_string_actions


@pytest.mark.skipif(not NO_CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("argv", [
    ["purify", "{in}", "--out", "{out}"],
    ["segment", "{in}", "--out", "{out}"],
    ["train", "--content", "{in}", "--style", "{in}", "--out", "{out}"],
    ["train-segmenter", "{in}", "--out", "{out}"],
    ["train-gaze", "{in}", "--out", "{out}"],
    ["distill", "--kind", "purifier", "--data", "{in}", "--out", "{out}"],
    ["train-simgan", "--synthetic", "{in}", "--real", "{in}", "--out", "{out}"],
    ["optimize", "{in}", "--style", "{in}", "--method", "gatys", "--out", "{out}/o.png"],
    ["demo", "--out", "{out}"],
    ["bench", "speed", "--quick", "--out", "{out}"],
])
def test_device_cuda_without_cuda_is_one_line_exit_2_before_any_output(tmp_path, capsys, argv):
    out = tmp_path / "out"
    (tmp_path / "in").mkdir()
    argv = [a.replace("{in}", str(tmp_path / "in")).replace("{out}", str(out)) for a in argv]
    assert main([*argv, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--device cuda" in err and "--device cpu" in err
    assert not out.exists()


def test_cpu_only_backends_are_refused_off_the_cpu():
    from eyepurify.backends import resolve_backend
    from eyepurify.errors import EyepurifyError

    off = Placement(torch.device("cpu"), "bf16")
    assert resolve_backend("auto", off) == "torch" and resolve_backend("eager", off) == "eager"
    with pytest.raises(EyepurifyError, match="--backend torch"):
        resolve_backend("onnx", off)


# ---------------------------------------------------------------- device="cpu" through every layer


def test_pipeline_with_device_cpu_passed_explicitly(tmp_path):
    """Purifier.from_pretrained(device="cpu") → its segmenter, its networks and the backends
    all on the CPU; outputs equal the default's (the same code path)."""
    from eyepurify.backends import accelerate
    from eyepurify.data.render import render_pair, sample_params
    from eyepurify.purify import Purifier

    rng = np.random.default_rng(0)
    ims = [render_pair(sample_params(rng), (72, 120), rng=rng)[0].image for _ in range(3)]
    photo = np.pad(ims[0], ((40, 40), (60, 60), (0, 0)), mode="edge")
    p = Purifier.from_pretrained(device="cpu")
    assert p.placement.device == torch.device("cpu") and p.segmenter.placement.device == torch.device("cpu")
    assert accelerate(p, "torch") == "torch"
    with DeviceCheck("cpu") as check:
        got = p.purify_arrays(ims + [photo])
    assert not check.bad
    for e in p.nets:
        assert all(q.device.type == "cpu" for q in e.net.parameters())
    ref = Purifier.from_pretrained()
    accelerate(ref, "torch")
    for a, b in zip(got, ref.purify_arrays(ims + [photo]), strict=True):
        assert np.array_equal(a, b)


def test_trainers_take_device_cpu(tmp_path):
    from eyepurify.train.purifier import PurifierTrainConfig, train_purifier
    from eyepurify.train.segmenter import SegmenterConfig, train

    from .synthetic_eyes import SyntheticEyes
    from .train.test_purifier import _folder

    c, s = _folder(tmp_path / "c", 4, 0), _folder(tmp_path / "s", 2, 1)
    cfg = PurifierTrainConfig(content=(str(c),), style=(str(s),), net="test_tiny", backbone="test_tiny", size=(16, 24),
                              batch=2, steps=2, val_every=2, sample_every=2, checkpoint_every=2)
    a = train_purifier(cfg, tmp_path / "a", progress=False, device="cpu")
    b = train_purifier(cfg, tmp_path / "b", progress=False)
    from safetensors.torch import load_file

    sa, sb = load_file(a), load_file(b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    res = train(SegmenterConfig(steps=2, batch=4, size=(24, 40), model="test_tiny", val_fraction=0.25),
                tmp_path / "seg", datasets=[SyntheticEyes(8)], progress=False, device="cpu")
    assert res.step == 2


# ---------------------------------------------------------------- nothing strays off the asked device


def _purifier_batch(n: int = 2, size: tuple[int, int] = (16, 24)):  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(0)
    x, s = torch.rand(n, 3, *size, generator=g), torch.rand(n, 3, *size, generator=g)
    lab, sl = torch.randint(0, 4, (n, *size), generator=g), torch.randint(0, 4, (n, *size), generator=g)
    return x, lab, s, sl


@pytest.mark.parametrize("method", ["ours", "johnson"])
def test_purifier_forward_backward_stays_on_the_asked_device(method):
    """The purifier objective (transformation net, attention maps, loss network, losses) on
    the meta device: any tensor made on the CPU inside it (a missing ``device=``) is caught."""
    from eyepurify.train.purifier import (
        Objective,
        PurifierTrainConfig,
        create_loss_network,
        create_model,
    )

    cfg = PurifierTrainConfig(content=("c",), style=("s",), net="test_tiny", backbone="test_tiny", size=(16, 24),
                              batch=2, method=method)
    p = make_placement("meta")
    model = create_model(cfg)
    backbone = p.module(create_loss_network(cfg))
    p.module(model)
    objective = Objective(model, backbone, cfg, None)
    batch = p.to(_purifier_batch())
    with DeviceCheck("meta") as check:
        obj, terms, out, att = objective(*batch)
        obj.backward()
    assert not check.bad, check.bad[:5]
    assert out.device.type == "meta" and all(t.device.type == "meta" for t in terms.values())
    assert (att is None) == (method == "johnson")
    assert all(q.grad is not None and q.grad.device.type == "meta" for q in model.parameters() if q.requires_grad)


def test_segmenter_and_paired_terms_stay_on_the_asked_device():
    from eyepurify.models.segmentation import create_segmentation_net
    from eyepurify.train.purifier import (
        Objective,
        Paired,
        PurifierTrainConfig,
        create_loss_network,
        create_model,
    )

    p = make_placement("meta")
    seg = p.module(create_segmentation_net("test_tiny"))
    x, lab, s, sl = p.to(_purifier_batch(2, (24, 40)))
    with DeviceCheck("meta") as check:
        F.cross_entropy(seg(x), lab).backward()
    assert not check.bad, check.bad[:5]
    cfg = PurifierTrainConfig(content=(), style=(), pairs=("r",), net="test_tiny", backbone="test_tiny", size=(16, 24), batch=2,
                              pixel_weight=1.0, feature_weight=1.0)
    model = create_model(cfg)
    p.module(model)
    objective = Objective(model, p.module(create_loss_network(cfg)), cfg, None)
    x, lab, s, sl = p.to(_purifier_batch())
    target = p.to(torch.rand(2, 3, 16, 24))
    with DeviceCheck("meta") as check:
        obj, *_ = objective(x, lab, s, sl, Paired(target, None, None))
        obj.backward()
    assert not check.bad, check.bad[:5]


def test_device_net_runs_on_its_device_and_answers_on_the_cpu():
    from eyepurify.models.transformer import create_transform_net

    net = create_transform_net("test_tiny").eval()
    wrapped = place(net, Placement(torch.device("meta")))
    assert isinstance(wrapped, DeviceNet) and wrapped.config is net.config
    x = torch.rand(2, 3, 16, 24)
    m = torch.zeros(2, net.config.mask_channels, 16, 24)
    xm, mm = make_placement("meta").to((x, m))
    with DeviceCheck("meta") as check:
        wrapped.torch_net(xm, mm)
    assert not check.bad
    assert wrapped(x, m).shape == (2, 3, 16, 24)
    bf16 = place(create_transform_net("test_tiny").eval(), Placement(torch.device("cpu"), "bf16"))
    assert isinstance(bf16, DeviceNet) and bf16(x, m).dtype == torch.float32
    assert place(bf16, make_placement("cpu")) is bf16.torch_net  # back to the plain module


def test_cpu_bf16_autocast_purifies_close_to_fp32():
    """The autocast path (the one GPUs take) on the CPU in bf16: close to fp32 on paired renders."""
    from eyepurify.data.render import render_pair, sample_params
    from eyepurify.purify import Purifier

    rng = np.random.default_rng(1)
    ims = [render_pair(sample_params(rng), (72, 120), rng=rng)[0].image for _ in range(4)]
    a = np.stack(Purifier.from_pretrained(device="cpu").purify_arrays(ims)).astype(np.float64)
    p16 = Purifier.from_pretrained(device=Placement(torch.device("cpu"), "bf16"))
    assert isinstance(p16.net, DeviceNet)
    b = np.stack(p16.purify_arrays(ims)).astype(np.float64)
    psnr = 10 * np.log10(255.0**2 / max(np.mean((a - b) ** 2), 1e-10))
    assert psnr > 30, psnr


# ---------------------------------------------------------------- torch.compile


@pytest.mark.slow
def test_compile_on_cpu_matches_eager():
    problem = dv.compiler_problem()
    if problem:
        pytest.skip(problem)
    from eyepurify.models.transformer import create_transform_net

    torch.manual_seed(0)
    net = create_transform_net("test_tiny").eval()
    x = torch.rand(1, 3, 16, 24)
    m = torch.zeros(1, net.config.mask_channels, 16, 24)
    with torch.no_grad():
        want = net(x, m)
        try:
            got = Placement(torch.device("cpu"), "fp32", compile=True).module(net)(x, m)
        except Exception as e:  # the toolchain is there but inductor cannot build here
            pytest.skip(f"torch.compile does not work on this machine: {type(e).__name__}: {str(e)[:200]}")
    assert torch.allclose(got, want, atol=1e-5)
