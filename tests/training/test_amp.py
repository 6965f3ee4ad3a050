import torch

from colorseg import training as amp


def test_cpu_stays_float32():
    assert amp.amp_dtype_name("cpu") == "float32"
    with amp.autocast_for(torch.device("cpu")):
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32


def test_cuda_uses_bfloat16_when_supported(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert amp.amp_dtype_name("cuda:0") == "bfloat16"
    context = amp.autocast_for("cuda")
    assert isinstance(context, torch.autocast) and context.fast_dtype == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert amp.amp_dtype_name("cuda") == "float32"
