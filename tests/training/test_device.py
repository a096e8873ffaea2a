from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mlnb.errors import ConfigError
from mlnb.training.device import (
    build_model,
    choose_device,
    cpu_threads,
    generator,
    maybe_compile,
    setup_device,
    torch_threads,
)


def tiny_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))


def test_auto_is_the_cpu_without_cuda_and_formats_follow_the_device():
    setup = setup_device("auto")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert setup.device.type == expected
    assert setup.bf16 == setup.channels_last == (expected == "cuda")


@pytest.mark.parametrize("requested", ["gpu0", "cuda0", "tpu"])
def test_unknown_device_names_the_key(requested):
    with pytest.raises(ConfigError, match=f"train.device: '{requested}'"):
        choose_device(requested)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_requested_without_one_is_a_clear_error():
    with pytest.raises(ConfigError, match="no CUDA device"):
        choose_device("cuda")


def test_bf16_autocast_and_channels_last_work_on_the_cpu():
    setup = setup_device("cpu", bf16=True, channels_last=True)
    model = build_model(tiny_cnn, setup, 1, "test")
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    images = setup.images(torch.rand(2, 1, 8, 8))
    assert images.is_contiguous(memory_format=torch.channels_last)
    with setup.autocast():
        logits = model(images)
    assert logits.dtype == torch.bfloat16
    logits.float().sum().backward()
    assert model[0].weight.grad.dtype == torch.float32


def test_formats_off_leave_fp32_and_contiguous_tensors():
    setup = setup_device("cpu", bf16=False, channels_last=False)
    model = build_model(tiny_cnn, setup, 1, "test")
    images = setup.images(torch.rand(2, 1, 8, 8))
    assert images.is_contiguous()
    with setup.autocast():
        assert model(images).dtype == torch.float32


def test_build_model_is_seeded_and_leaves_the_global_rng_alone():
    setup = setup_device("cpu")
    before = torch.random.get_rng_state()
    first, second = (build_model(tiny_cnn, setup, 7, "cnn") for _ in range(2))
    other = build_model(tiny_cnn, setup, 7, "other")
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.equal(first[0].weight, second[0].weight)
    assert not torch.equal(first[0].weight, other[0].weight)


def test_generator_streams_depend_on_their_keys():
    setup = setup_device("cpu")
    draw = [torch.rand(3, generator=generator(setup, 5, *keys)) for keys in (("a",), ("a",), ("b",))]
    assert torch.equal(draw[0], draw[1]) and not torch.equal(draw[0], draw[2])


def test_torch_threads_restores_the_count():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ConfigError, match="train.threads"), torch_threads(0):
        pass


def test_maybe_compile_off_returns_the_model_itself():
    model = tiny_cnn()
    assert maybe_compile(model, False) is model


@pytest.mark.slow
def test_compiled_tiny_model_matches_eager_on_the_cpu():
    setup = setup_device("cpu")
    model = build_model(tiny_cnn, setup, 3, "compile")
    compiled = maybe_compile(model, True)
    images = torch.rand(4, 1, 8, 8)
    torch.testing.assert_close(compiled(images), model(images), rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
def test_cuda_setup_uses_bf16_and_channels_last():
    setup = setup_device("cuda")
    model = build_model(tiny_cnn, setup, 1, "test")
    with setup.autocast():
        assert model(setup.images(torch.rand(2, 1, 8, 8, device=setup.device))).dtype == torch.bfloat16


def test_cpu_threads_limits_torch_and_numpys_blas_and_restores_them():
    from threadpoolctl import threadpool_info

    def blas_threads():
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    np.ones((64, 64)) @ np.ones((64, 64))  # numpy's BLAS is loaded
    before = torch.get_num_threads(), blas_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1 and blas_threads() == {1}
    assert (torch.get_num_threads(), blas_threads()) == before
