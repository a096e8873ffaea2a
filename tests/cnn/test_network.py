from __future__ import annotations

import pytest
import torch

from mlnb.cnn.network import BlogCNN, SeededDropout


def test_shapes_through_every_block():
    model = BlogCNN()
    images = torch.rand(5, 1, 28, 28)
    features = model.features(images)
    assert features.shape == (5, 16 * 7 * 7)
    assert model.dense(features).shape == (5, 1024)
    assert model(images).shape == (5, 10)


def test_parameter_count_is_the_blogs_network():
    conv1, conv2 = 16 * 9 + 16, 16 * 16 * 9 + 16
    dense, logits = 784 * 1024 + 1024, 1024 * 10 + 10
    assert sum(p.numel() for p in BlogCNN().parameters()) == conv1 + conv2 + dense + logits
    assert sum(p.numel() for p in BlogCNN(batch_norm=True).parameters()) == conv1 + conv2 + dense + logits + 2048


@pytest.mark.parametrize("shape", [(2, 28, 28), (2, 3, 28, 28), (2, 1, 32, 32)])
def test_wrong_image_shapes_are_named(shape):
    with pytest.raises(ValueError, match=rf"expects N x 1 x 28 x 28 images, got shape \({shape[0]}, "):
        BlogCNN()(torch.rand(*shape))


@pytest.mark.parametrize("kwargs", [{"kernels": 0}, {"dense": 0}, {"dropout": 1.0}, {"dropout": -0.1},
                                    {"batch_norm_decay": 1.0}])
def test_bad_sizes_and_rates_are_refused(kwargs):
    with pytest.raises(ValueError):
        BlogCNN(**kwargs)


def test_seeded_dropout_is_reproducible_scaled_and_off_in_eval():
    x = torch.ones(1000)
    first = SeededDropout(0.4, torch.Generator().manual_seed(3))(x)
    second = SeededDropout(0.4, torch.Generator().manual_seed(3))(x)
    assert torch.equal(first, second)
    kept = first[first != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.6))
    assert 0.3 < (first == 0).float().mean() < 0.5
    layer = SeededDropout(0.4, None).eval()
    assert torch.equal(layer(x), x)


def test_batch_norm_and_dropout_change_training_but_not_inference_shape():
    model = BlogCNN(batch_norm=True, dropout=0.5, dropout_generator=torch.Generator().manual_seed(0))
    images = torch.rand(4, 1, 28, 28)
    train_logits = model(images)
    model.eval()
    assert model(images).shape == train_logits.shape == (4, 10)


def test_initialised_like_tensorflow_glorot_weights_and_zero_biases():
    torch.manual_seed(0)
    model = BlogCNN()
    dense = model.dense[0]
    bound = (6 / (784 + 1024)) ** 0.5
    assert dense.bias.abs().max() == 0 and dense.weight.abs().max() <= bound
    assert dense.weight.abs().max() > 0.9 * bound  # the whole Glorot range, not torch's narrower default


def test_batch_norm_decay_is_tensorflows_convention():
    assert BlogCNN(batch_norm=True).dense[2].momentum == pytest.approx(0.01)
    assert BlogCNN(batch_norm=True, batch_norm_decay=0.9).dense[2].momentum == pytest.approx(0.1)
