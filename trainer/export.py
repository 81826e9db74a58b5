"""ONNX export of a trained classifier, with its card, checked before it is written as done.

The export traces with batch 2 and a dynamic batch axis, keeps the weights inside
the ``.onnx`` (torch 2.13's dynamo exporter otherwise splits them into
``.onnx.data`` and fixes the batch), runs ``onnx.checker`` and compares
onnxruntime with eager torch; it fails if the outputs disagree beyond
``PARITY_RTOL``/``PARITY_ATOL``. The card is written from the training config
itself, so labels and frontend parameters cannot drift from what was trained.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from mirtag.runtime.card import EMBEDDING_NAME, INPUT_NAME, FrontendConfig, Head, ModelCard, TensorSpec, sha256_file
from mirtag.runtime.errors import MirtagError

from . import require_torch

_LOGGER = logging.getLogger(__name__)

OPSET = 18
"""ONNX opset of every exported graph (a constant, so exports are reproducible)."""
PARITY_RTOL = 1e-3
PARITY_ATOL = 1e-5


class ExportError(MirtagError):
    """The exported graph failed its checks (checker or torch-vs-onnxruntime parity)."""


def export_onnx(module, example: Any, path: Path, output_names: list[str], input_name: str = INPUT_NAME) -> Path:
    """Export ``module`` with one dynamic-batch input (``features`` by default); weights inside the file."""
    torch = require_torch()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1, max=65536)
    tmp = path.with_name(f".{path.name}.tmp")
    module.eval()
    with torch.no_grad():
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            external_data=False,
            input_names=[input_name],
            output_names=output_names,
            dynamic_shapes=({0: batch},),
            opset_version=OPSET,
            verbose=False,
        )
    program.save(str(tmp), external_data=False)
    data = tmp.with_name(tmp.name + ".data")
    if data.exists():
        data.unlink()
        tmp.unlink(missing_ok=True)
        raise ExportError(f"{path}: the exporter split weights into {data.name}; refusing a two-file model")
    os.replace(tmp, path)
    import onnx

    onnx.checker.check_model(str(path), full_check=True)
    return path


def check_parity(
    module, onnx_path: Path, inputs: np.ndarray, output_names: list[str], input_name: str = INPUT_NAME
) -> float:
    """Max abs difference between torch and onnxruntime (CPU); raises ExportError beyond tolerance."""
    torch = require_torch()
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(output_names, {input_name: inputs.astype(np.float32)})
    module.eval()
    with torch.no_grad():
        want = module(torch.from_numpy(inputs.astype(np.float32)))
    want = want if isinstance(want, (tuple, list)) else (want,)
    worst = 0.0
    for name, g, w in zip(output_names, got, want):
        w = w.numpy()
        if g.shape != w.shape or not np.allclose(g, w, rtol=PARITY_RTOL, atol=PARITY_ATOL):
            diff = float(np.max(np.abs(g - w))) if g.shape == w.shape else float("inf")
            raise ExportError(
                f"{onnx_path}: output {name!r} differs from torch by {diff:.3g} (rtol {PARITY_RTOL}, atol {PARITY_ATOL})"
            )
        worst = max(worst, float(np.max(np.abs(g - w))))
    return worst


def export_classifier(
    model,
    *,
    out_dir: str | os.PathLike[str],
    name: str,
    version: str,
    frontend: FrontendConfig,
    heads: list[Head],
    provenance: dict[str, Any],
    parity_inputs: np.ndarray | None = None,
    state_dict_file: str | None = None,
) -> ModelCard:
    """Write ``<name>.onnx`` + ``<name>.onnx.json`` (+ the ``.pt`` state dict) for a Classifier.

    Parameters
    ----------
    model : Classifier
        Trained torch model (heads in the order of ``heads``).
    out_dir : path-like
    name, version : str
    frontend : FrontendConfig
        The frontend the features were computed with (from the training config).
    heads : list of Head
        Names, kinds, labels, descriptions and tuned thresholds.
    provenance : dict
        Training facts (config, data, commit, best epoch, metrics).
    parity_inputs : np.ndarray [shape=(n, 2, n_mels, frames)], optional
        Real windows for the parity check (random windows are always checked too).

    Returns
    -------
    ModelCard
        The card as written (and loadable with ``load_card``).
    """
    torch = require_torch()
    from .models import ExportWrapper

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kinds = {h.name: h.kind for h in heads}
    if list(model.config.heads) != [h.name for h in heads]:
        raise ExportError(f"model heads {list(model.config.heads)} != card heads {[h.name for h in heads]}")
    wrapper = ExportWrapper(model.eval(), kinds).eval()
    output_names = [h.name for h in heads] + [EMBEDDING_NAME]
    example = torch.rand(2, *frontend.input_shape)
    onnx_path = export_onnx(wrapper, example, out_dir / f"{name}.onnx", output_names)
    rng = np.random.default_rng(0)
    worst = check_parity(wrapper, onnx_path, rng.random((3, *frontend.input_shape), dtype=np.float32), output_names)
    if parity_inputs is not None and len(parity_inputs):
        worst = max(worst, check_parity(wrapper, onnx_path, np.asarray(parity_inputs, np.float32), output_names))
    prov = dict(provenance)
    prov["export"] = {
        "opset": OPSET,
        "parity_max_abs_diff": worst,
        "parity_rtol": PARITY_RTOL,
        "parity_atol": PARITY_ATOL,
        "torch": torch.__version__,
    }
    if state_dict_file:
        pt_path = out_dir / state_dict_file
        # training-only modules (the distillation projection) are not part of the classifier
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("teacher_proj.")}
        torch.save({"config": dataclasses.asdict(model.config), "state_dict": state}, pt_path)
        prov["state_dict"] = {"file": pt_path.name, "sha256": sha256_file(pt_path)}
    card = ModelCard(
        model_type="classifier",
        name=name,
        version=version,
        sha256=sha256_file(onnx_path),
        onnx_file=onnx_path.name,
        frontend=frontend,
        heads=tuple(heads),
        inputs=(TensorSpec(INPUT_NAME, ("batch", *frontend.input_shape)),),
        outputs=tuple(TensorSpec(h.name, ("batch", len(h.labels))) for h in heads)
        + (TensorSpec(EMBEDDING_NAME, ("batch", model.embed_dim)),),
        provenance=prov,
    )
    card.save(out_dir / f"{name}.onnx.json")
    _LOGGER.info("exported %s (parity max abs diff %.2g)", onnx_path, worst)
    return card


def load_classifier(pt_path: str | os.PathLike[str]):
    """Rebuild a Classifier from an exported ``.pt`` (``weights_only=True``)."""
    torch = require_torch()
    from .models import Classifier, ModelConfig

    blob = torch.load(pt_path, map_location="cpu", weights_only=True)
    cfg = dict(blob["config"])
    cfg["channels"] = tuple(cfg["channels"])
    model = Classifier(ModelConfig(**cfg))
    model.load_state_dict(blob["state_dict"])
    return model.eval()
