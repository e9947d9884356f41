"""Model kinds: ``kind`` -> config class, builder, loader; :func:`load_model` reads any model file.

Kinds: ``"purifier"`` (:class:`~eyepurify.models.transformer.TransformNet`, config under
``net``), ``"gaze-cnn"`` (:class:`~eyepurify.gaze.cnn.GazeCNN`, ``net``), ``"segmentation"`` (:class:`~eyepurify.models.segmentation.SegmentationNet`, ``net``;
model files and training checkpoints), ``"simgan-refiner"``
(:class:`~eyepurify.models.simgan.Refiner`, ``refiner``). Every file eyepurify writes says its
kind in its metadata; files written before that are recognised by what they hold
(:func:`infer_kind`), so old model files and run folders keep loading.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from eyepurify.errors import WeightsError
from eyepurify.models.export import check_state, read_model_file, read_model_meta
from eyepurify.models.files import FORMAT, load_checkpoint
from eyepurify.models.probe import probe_model


@dataclass(frozen=True)
class ModelKind:
    """One kind of model file: where its network config sits in the metadata, the network and
    config classes (``module:Class``), and what to tell a user who passed another file."""

    name: str
    config_key: str
    network: str
    config: str
    label: str
    writer: str

    def _attr(self, spec: str) -> Any:
        module, name = spec.split(":")
        return getattr(importlib.import_module(module), name)

    def build(self, config: dict[str, Any]) -> nn.Module:
        """The network (randomly initialised) of a config dict; TypeError/ValueError if unknown."""
        cls = self._attr(self.config)
        cfg = cls.from_dict(config) if hasattr(cls, "from_dict") else cls(**config)
        return self._attr(self.network)(cfg)


KINDS: dict[str, ModelKind] = {
    "purifier": ModelKind(
        "purifier", "net", "eyepurify.models.transformer:TransformNet",
        "eyepurify.models.transformer:TransformNetConfig", "purifier model", "a file written by `eyepurify train`",
    ),
    "segmentation": ModelKind(
        "segmentation", "net", "eyepurify.models.segmentation:SegmentationNet",
        "eyepurify.models.segmentation:SegmentationNetConfig", "segmentation model", "a file written by train-segmenter",
    ),
    "simgan-refiner": ModelKind(
        "simgan-refiner", "refiner", "eyepurify.models.simgan:Refiner", "eyepurify.models.simgan:RefinerConfig",
        "SimGAN refiner file", "the refiner.safetensors written by `eyepurify train-simgan`",
    ),
    "gaze-cnn": ModelKind(
        "gaze-cnn", "net", "eyepurify.gaze.cnn:GazeCNN", "eyepurify.gaze.cnn:GazeCNNConfig",
        "gaze CNN model", "a file written by `eyepurify train-gaze`",
    ),
}


def infer_kind(meta: dict[str, Any]) -> str | None:
    """The kind a file's metadata says, or for older files the kind its contents show; None if neither."""
    kind = meta.get("kind")
    if isinstance(kind, str):
        return kind
    if meta.get("format") == FORMAT:  # checkpoint headers before they carried a kind
        extra, config = meta.get("extra"), meta.get("config")
        if isinstance(extra, dict) and isinstance(extra.get("net"), dict):
            return "segmentation"
        if isinstance(config, dict) and "method" in config and "style" in config:
            return "purifier"
        return None
    if isinstance(meta.get("refiner"), dict):
        return "simgan-refiner"
    net = meta.get("net")
    if isinstance(net, dict):
        if "num_classes" in net or "depth" in net:
            return "segmentation"
        if "n_res" in net or "mask_channels" in net:
            return "purifier"
    return None


def load_model(path: str | os.PathLike[str], kind: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """(network in eval mode, metadata with its ``kind``) of any eyepurify model file.

    ``kind``: the kind the caller needs (a WeightsError naming the file when it is another).
    Segmentation training checkpoints load too (their metadata then holds ``kind``, ``net``,
    ``size`` and ``step``). WeightsError with the fix when the file is missing, damaged, its
    metadata out of bounds (checked before anything is built), its weights do not fit its
    config (checked on the meta device before the network is allocated), or the network
    fails the probe (:func:`eyepurify.models.probe.probe_model`: NaN, inf, flat outputs).
    """
    meta: dict[str, Any] = dict(read_model_meta(path))
    found = infer_kind(meta)
    want = KINDS.get(kind or found or "")
    if kind is not None and found != kind:
        assert want is not None, f"unknown model kind {kind!r}"
        raise WeightsError(f"{path}: not a {want.label} (kind {meta.get('kind')!r}); pass {want.writer}")
    if want is None:
        raise WeightsError(f"{path}: unknown model kind {found!r} (choose a file of kind {', '.join(KINDS)})")
    if meta.get("format") == FORMAT:
        if want.name != "segmentation":
            raise WeightsError(f"{path}: a {want.name} training checkpoint; pass the run's model file instead")
        ckpt = load_checkpoint(path)
        state = ckpt.model_state
        meta = {"kind": want.name, "net": ckpt.extra.get("net"), "size": ckpt.config.get("size"), "step": ckpt.step}
    else:
        state, meta = read_model_file(path)
        meta = {**meta, "kind": want.name}
    config = meta.get(want.config_key)
    if not isinstance(config, dict):
        raise WeightsError(f"{path}: metadata has no {want.config_key!r} config; pass {want.writer}")
    try:
        with torch.device("meta"):  # the architecture alone, allocated nowhere, checked against the file first
            skeleton = want.build(config)
    except (TypeError, ValueError) as e:
        raise WeightsError(f"{path}: unknown network config {config} ({e})") from None
    check_state(skeleton, state, path)
    net = want.build(config)
    net.load_state_dict(state)
    probe_model(net.eval(), want.name, path)
    return net, meta
