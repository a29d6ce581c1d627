"""A trained model for inference, with torch alone: what evaluate, report, predict and the served
model load.

Lightning and torchmetrics are for training: importing them costs seconds at every start (they
import torchvision's models, torch._dynamo and scipy.signal), which a stage that only runs the net
forward does not need. `Inference` holds what both sides share (the forward pass, raw input to
the net's input, flip test-time augmentation); the training module, `module.Model`, adds the
rest. A checkpoint's weights load into either: both keep the net under `net.`.
"""

from __future__ import annotations

import math
import os
import pickle
import platform
import re
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from reprovision.errors import BadInput, ConfigError
from reprovision.models.nets import NETS, build_net
from reprovision.tasks import TASKS, Task


class Inference:
    """The forward pass of a net trained for its task, for any nn.Module holding `net`, `task`,
    `hparams.inputs` (the normalise stage's fit) and `flip_tta`."""

    net: nn.Module
    task: Task
    flip_tta: bool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out if self.task.name == "classification" else out.squeeze(1)

    def preprocess(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw rows to the net's input: uint8 images (N, C, H, W) or table rows (N, F) normalised
        with the training split's statistics; text token ids pass as they are. Training,
        evaluation, the report, predict and the served model all normalise here, a batch at a time."""
        inputs = self.hparams.inputs
        if inputs["kind"] == "text":
            return raw
        mean, std = self._statistics(raw.device)
        # In place on one float copy: a batch of 1,024 photos is 200 MB of float32, and the
        # expression written out would hold three such at once. The same operations, the same bits.
        x = raw.to(torch.float32, copy=True)
        if inputs["kind"] == "image":
            return x.div_(255.0).sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1))
        return x.sub_(mean).div_(std)

    def _statistics(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The training split's mean and std as float32 tensors on `device`, made once per device:
        training normalises every batch, and a host-to-device copy per step would wait on the GPU."""
        cache = self.__dict__.setdefault("_statistics_on", {})
        if device not in cache:
            inputs = self.hparams.inputs
            mean, std = torch.tensor(inputs["mean"], device=device), torch.tensor(inputs["std"], device=device)
            width = inputs["shape"][0] if inputs["kind"] == "image" else len(inputs["features"])
            if mean.shape != (width,) or std.shape != (width,):  # in-place broadcasting would name neither
                what = "channels" if inputs["kind"] == "image" else "columns"
                raise ValueError(f"statistics of {len(mean)} means and {len(std)} stds for {width} {what}")
            cache[device] = mean, std
        return cache[device]

    def predict_step(self, batch, batch_idx: int = 0):
        outputs = self(batch[0])
        if not self.flip_tta:
            return outputs
        # Mean class probabilities of the image and its mirror, as log-probabilities: logits
        # whose softmax is that mean, so loss and accuracy read them like any others. In log
        # space, so a class both views rule out stays finite.
        views = torch.stack([outputs.log_softmax(1), self(batch[0].flip(3)).log_softmax(1)])
        return torch.logsumexp(views, 0) - math.log(2)


class Predictor(Inference, nn.Module):
    """A checkpoint's net and what it was trained on (`hparams`: task, classes, inputs, target),
    ready to answer; the training settings a checkpoint also holds (optimizer, label smoothing)
    are not needed here."""

    def __init__(self, net: dict, task: str, classes: list[str], inputs: dict, target: str = "", **training) -> None:
        super().__init__()
        self.hparams = SimpleNamespace(net=net, task=task, classes=classes, inputs=inputs, target=target, **training)
        self.task = TASKS[task]
        kwargs = {k: v for k, v in net.items() if k not in ("name", "init")}
        self.net = build_net(net["name"], inputs, len(classes) if classes else 1, **kwargs)  # weights: the checkpoint's
        self.flip_tta = False


def _mps() -> bool:
    """Apple's GPU as Lightning counts it: torch's MPS backend on Apple silicon, unless DISABLE_MPS=1."""
    apple_silicon = platform.processor() in ("arm", "arm64")
    return torch.backends.mps.is_available() and apple_silicon and os.environ.get("DISABLE_MPS", "0") != "1"


def device_for(accelerator: str) -> torch.device:
    """trainer.accelerator as the device a net runs on, read as Lightning reads it: cpu; gpu and
    auto: Apple's MPS, else CUDA (auto: else the CPU). The train stage checks the config with it
    before Lightning starts; evaluate runs the net on its answer."""
    if accelerator == "cpu":
        return torch.device("cpu")
    if _mps():
        return torch.device("mps")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if accelerator == "gpu":
        raise ConfigError(
            "trainer.accelerator=gpu but no GPU (CUDA or Apple MPS) here; set trainer.accelerator=cpu or auto"
        )
    return torch.device("cpu")


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint's contents, unpickling nothing but tensors and plain values (weights_only=True).
    One-line BadInput when it cannot be loaded so: the refused global named, or the file unreadable."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if refused := _refused_globals(path, e):
            raise BadInput(
                f"{path}: refusing to load: it would import {', '.join(refused)} (only tensors and plain values "
                "are loaded); use a checkpoint written by this pipeline"
            ) from None
        raise _unreadable(path, e) from None
    except (RuntimeError, OSError, EOFError, KeyError, ValueError, IndexError, UnicodeDecodeError) as e:
        raise _unreadable(path, e) from None  # truncated, or not torch.save's format: each gives its own
    if not isinstance(ckpt, dict):
        raise BadInput(f"{path}: holds a {type(ckpt).__name__}, not a checkpoint; use one written by this pipeline")
    return ckpt


def _refused_globals(path: str | Path, error: Exception) -> list[str]:
    """What torch refused to import: its own list, else (an old, non-zip file) its message's."""
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # not a zip checkpoint
        return re.findall(r"GLOBAL ([\w.]+)", str(error))


def _unreadable(path: str | Path, error: Exception) -> BadInput:
    message = (str(error).strip().splitlines() or [""])[0].split(". ")[0][:160]  # torch's first sentence
    plain = isinstance(error, RuntimeError | pickle.UnpicklingError) and message
    detail = message if plain else f"{type(error).__name__} {message}".strip()  # KeyError 101, EOFError
    return BadInput(f"{path}: not a readable checkpoint ({detail}): truncated or not a checkpoint; train again")


def load_predictor(path: str | Path) -> Predictor:
    """Load a checkpoint without unpickling arbitrary objects (weights_only=True), refusing in one
    line one that is not this pipeline's model."""
    ckpt = load_checkpoint(path)
    hparams = ckpt.get("hyper_parameters")
    net = hparams.get("net") if isinstance(hparams, dict) else None
    if not isinstance(net, dict) or net.get("name") not in NETS:
        name = net.get("name") if isinstance(net, dict) else None
        raise BadInput(
            f"{path}: not a model checkpoint of this pipeline (net {name!r}; known: {', '.join(NETS)}); "
            "train it with this version or pass another --model"
        )
    if damaged := _damaged_weight(ckpt.get("state_dict")):
        raise BadInput(f"{path}: weight {damaged}: a diverged or damaged model; train it again")
    try:
        # Built on the meta device, then given the checkpoint's own tensors: settings that declare a
        # larger net than the weights hold are refused by their shapes, before anything of that
        # size is allocated (a 62 KB file would otherwise ask for gigabytes).
        with torch.device("meta"):
            module = Predictor(**hparams)
        module.load_state_dict(ckpt["state_dict"], assign=True)
        module.eval()
        _answer_one_row(module)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as e:  # other settings or weights than the net's
        lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
        if lines[1:] and lines[0].startswith("Error(s) in loading state_dict"):
            lines = lines[1:]  # torch's header: the next line names the key
        detail = (lines or [type(e).__name__])[0][:160]
        raise BadInput(f"{path}: does not fit this pipeline's {net['name']} ({detail}); train it again") from None
    return module


def _damaged_weight(state_dict) -> str | None:
    """The first weight no trained net holds (NaN or infinite values, complex numbers), named with
    what is wrong; None if there is none. Such a model would load and answer NaN or garbage."""
    if not isinstance(state_dict, dict):
        return None  # load_state_dict names what is missing
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            continue  # load_state_dict names what is not a tensor
        if value.is_complex():
            return f"{key} holds complex numbers"
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return f"{key} holds NaN or infinite values"
    return None


def _answer_one_row(module: Predictor) -> None:
    """One zero row through preprocessing and the net: settings that contradict the weights (the
    task, statistics of another length or type) fail here, at load, not at the first prediction."""
    inputs = module.hparams.inputs
    if inputs["kind"] == "image":
        row = torch.zeros([1, *inputs["shape"]], dtype=torch.uint8)
    elif inputs["kind"] == "text":  # token ids, all padding: max_length words and START (64 if uncapped)
        row = torch.zeros([1, (inputs["max_length"] or 63) + 1], dtype=torch.long)
    else:
        row = torch.zeros([1, len(inputs["features"])])
    with torch.inference_mode():
        out = module(module.preprocess(row))
    classes = module.hparams.classes
    expected = [1, len(classes)] if module.task.name == "classification" else [1]
    if list(out.shape) != expected:
        raise ValueError(f"the net answers {list(out.shape)} for one row; a {module.task.name} of it needs {expected}")
