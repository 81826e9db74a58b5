"""The classifier networks and the training device / mixed-precision choice (needs torch)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.train
torch = pytest.importorskip("torch", reason="the trainer tests need the train extra (torch)")


def _model(arch: str):
    from mirtag.trainer.models import Classifier, ModelConfig

    torch.manual_seed(0)
    return Classifier(ModelConfig(arch=arch, channels=(4, 8, 16), heads={"genre": 5, "quadrant": 4}))


@pytest.mark.parametrize("arch", ["cnn", "rese"])
def test_both_architectures_give_logits_per_head_and_an_embedding(arch):
    model = _model(arch).eval()
    x = torch.rand(3, 2, 84, 128)
    logits = model(x)
    assert {h: tuple(z.shape) for h, z in logits.items()} == {"genre": (3, 5), "quadrant": (3, 4)}
    assert tuple(model.embed(x).shape) == (3, model.embed_dim) == (3, 32)


def test_rese_adds_a_residual_path_and_squeeze_excitation():
    from mirtag.trainer.models import ReSEBlock, count_parameters

    cnn, rese = _model("cnn"), _model("rese")
    assert any(isinstance(m, ReSEBlock) for m in rese.modules())
    assert count_parameters(rese) > 1.5 * count_parameters(cnn)


def test_unknown_architecture_is_refused():
    from mirtag.trainer.models import Classifier, ModelConfig

    with pytest.raises(ValueError, match="unknown arch"):
        Classifier(ModelConfig(arch="vgg", heads={"genre": 2}))


def test_auto_device_is_the_cpu_without_cuda(monkeypatch):
    from mirtag.trainer.device import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")
    assert pick_device("cpu") == torch.device("cpu")


def test_asking_for_cuda_without_a_gpu_is_a_clear_error(monkeypatch):
    from mirtag.runtime.errors import ParameterError
    from mirtag.trainer.device import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ParameterError, match="sees no CUDA GPU"):
        pick_device("cuda")
    with pytest.raises(ParameterError, match="unknown device"):
        pick_device("tpu")


def test_mixed_precision_is_off_on_the_cpu_by_default():
    from mirtag.trainer.device import MixedPrecision

    mp = MixedPrecision(torch.device("cpu"), enabled=True)
    assert not mp.enabled and not mp.scaler.is_enabled() and mp.state_dict() == {}
    with mp.autocast():
        y = torch.nn.Linear(3, 2)(torch.rand(4, 3))
    assert y.dtype == torch.float32


def test_mixed_precision_step_trains_under_autocast():
    """The autocast path (bfloat16 on the CPU here; CUDA uses the same code) lowers a loss."""
    from mirtag.trainer.device import MixedPrecision
    from mirtag.trainer.train import masked_loss

    mp = MixedPrecision(torch.device("cpu"), enabled=True, allow_cpu=True)
    assert mp.enabled and mp.dtype == torch.bfloat16
    model = _model("cnn")
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    torch.manual_seed(1)
    x = torch.rand(8, 2, 84, 128)
    t = {"genre": (torch.rand(8, 5) > 0.5).float(), "quadrant": torch.eye(4)[torch.arange(8) % 4]}
    m = {h: torch.ones_like(v) for h, v in t.items()}
    kinds = {"genre": "sigmoid", "quadrant": "softmax"}
    losses = []
    for _ in range(5):
        with mp.autocast():
            logits = model(x)
            assert logits["genre"].dtype == torch.bfloat16
            loss, _ = masked_loss(logits, t, m, kinds, {})
        assert loss.dtype == torch.float32, "the losses are computed in float32"
        mp.step(loss, opt)
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


def test_tune_cpu_sets_the_threads_and_keeps_freed_memory_on_glibc():
    import platform

    from mirtag.trainer.device import tune_cpu

    before = torch.get_num_threads()
    try:
        tuned = tune_cpu(1)
        assert torch.get_num_threads() == 1
        assert tuned == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
    finally:
        torch.set_num_threads(before)
