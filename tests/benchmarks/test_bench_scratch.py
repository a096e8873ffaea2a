"""The from-scratch network on MNIST-sized batches: ours (array API, vectorised) beside the blog's way.

Baselines measured in the same run, one thread each, on the same synthetic 784-100-10
batches of 100 (float32, sigmoid hidden and output layers, lr 1.0, momentum 0.5):

- the blog-style loop: one example at a time as a column vector, a row of ones stacked
  for the bias node, the blog's (n_out x n_in+1) weights, weight deltas summed over the
  batch, then the same momentum update (post 10's "for-loop over the input examples");
- torch autograd on the same network (nn parameters, loss.backward(), torch.optim.SGD
  with momentum: the same update);
- our code on torch tensors (CPU, and CUDA when there is one).

All four first take the same steps from the same weights and must agree; then each is
timed (best of three) and the images/s and ratios printed.

Run: .venv/bin/python -m pytest -s -m benchmark tests/benchmarks/test_bench_scratch.py
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from mlnb.rng import generator
from mlnb.scratch.network import Network, to_numpy

pytestmark = pytest.mark.benchmark

LAYERS = (784, 100, 10)
TRANSFERS = ("sigmoid", "sigmoid")
BATCH, LEARNING_RATE, MOMENTUM = 100, 1.0, 0.5


def synthetic_batches(count: int) -> tuple[np.ndarray, np.ndarray]:
    rng = generator(0, "bench-scratch")
    images = rng.random((count, BATCH, LAYERS[0]), dtype=np.float32)
    labels = rng.integers(0, LAYERS[-1], size=(count, BATCH))
    return images, np.eye(LAYERS[-1], dtype=np.float32)[labels]


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


class BlogLoop:
    """The blog's network, one example at a time (weights n_out x n_in+1, bias node last)."""

    def __init__(self, net: Network):
        self.weights = [np.concatenate([w, b[:, None]], axis=1) for w, b in zip(net.weights, net.biases, strict=True)]
        self.previous = [np.zeros_like(w) for w in self.weights]

    def train_step(self, inputs, targets):
        deltas_sum = [np.zeros_like(w) for w in self.weights]
        for x, t in zip(inputs, targets, strict=True):
            outputs = [x[:, None]]
            for w in self.weights:
                outputs.append(sigmoid(w.dot(np.vstack([outputs[-1], np.ones((1, 1), np.float32)]))))
            delta = (outputs[-1] - t[:, None]) * outputs[-1] * (1 - outputs[-1])
            for index in reversed(range(len(self.weights))):
                layer_output = np.vstack([outputs[index], np.ones((1, 1), np.float32)])
                deltas_sum[index] += delta.dot(layer_output.T)
                if index:
                    pulled_back = self.weights[index].T.dot(delta)[:-1]
                    delta = pulled_back * outputs[index] * (1 - outputs[index])
        for index, total in enumerate(deltas_sum):
            step = LEARNING_RATE * total / len(inputs) + MOMENTUM * self.previous[index]
            self.weights[index] -= step
            self.previous[index] = step

    def first_weights(self):
        return self.weights[0][:, :-1]


class TorchAutograd:
    """The same network and update with torch autograd and torch.optim.SGD."""

    def __init__(self, net: Network, device="cpu"):
        self.params = [torch.tensor(to_numpy(p), device=device, requires_grad=True)
                       for pair in zip(net.weights, net.biases, strict=True) for p in pair]
        self.optimizer = torch.optim.SGD(self.params, lr=LEARNING_RATE, momentum=MOMENTUM)

    def train_step(self, inputs, targets):
        out = inputs
        for layer in range(len(self.params) // 2):
            out = torch.sigmoid(out @ self.params[2 * layer].T + self.params[2 * layer + 1])
        loss = ((out - targets) ** 2).sum() / (2 * len(inputs))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def first_weights(self):
        return self.params[0].detach().cpu().numpy()


class Ours:
    def __init__(self, net: Network):
        self.net = net

    def train_step(self, inputs, targets):
        self.net.train_step(inputs, targets, LEARNING_RATE, MOMENTUM, reduction="mean")

    def first_weights(self):
        return to_numpy(self.net.weights[0])


def fresh(xp_device=None) -> Network:
    import array_api_compat

    xp = array_api_compat.array_namespace(torch.zeros(1)) if xp_device else None
    return Network.initialise(LAYERS, TRANSFERS, generator(1, "bench-init"), xp=xp, device=xp_device,
                              dtype="float32")


def images_per_second(model, inputs, targets, sync=lambda: None, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        sync()
        started = time.perf_counter()
        for x, t in zip(inputs, targets, strict=True):
            model.train_step(x, t)
        sync()
        best = min(best, time.perf_counter() - started)
    return len(inputs) * BATCH / best


def test_bench_scratch_network_images_per_second():
    images, targets = synthetic_batches(20)
    torch_images, torch_targets = torch.from_numpy(images), torch.from_numpy(targets)
    with threadpool_limits(1):
        torch.set_num_threads(1)
        models = {"ours (numpy)": (Ours(fresh()), images, targets),
                  "ours (torch cpu)": (Ours(fresh("cpu")), torch_images, torch_targets),
                  "torch autograd (cpu)": (TorchAutograd(fresh()), torch_images, torch_targets),
                  "blog loop (numpy)": (BlogLoop(fresh()), images, targets)}
        # Same start, same three steps: every implementation computes the same thing.
        for model, x, t in models.values():
            for step in range(3):
                model.train_step(x[step], t[step])
        reference = models["ours (numpy)"][0].first_weights()
        for name, (model, _, _) in models.items():
            np.testing.assert_allclose(model.first_weights(), reference, rtol=1e-4, atol=1e-5, err_msg=name)

        rates = {name: images_per_second(model, x[:5] if "blog" in name else x, t[:5] if "blog" in name else t)
                 for name, (model, x, t) in models.items()}
        if torch.cuda.is_available():
            data = torch_images.cuda(), torch_targets.cuda()
            rates["ours (torch cuda)"] = images_per_second(Ours(fresh("cuda")), *data, sync=torch.cuda.synchronize)
            rates["torch autograd (cuda)"] = images_per_second(TorchAutograd(fresh(), "cuda"), *data,
                                                               sync=torch.cuda.synchronize)
    print(f"\nfrom-scratch {'-'.join(map(str, LAYERS))} network, batches of {BATCH}, float32, one CPU thread:")
    for name, rate in rates.items():
        print(f"  {name:24s} {rate:12,.0f} training images/s")
    ours = rates["ours (numpy)"]
    print(f"  ours (numpy) / blog loop:            {ours / rates['blog loop (numpy)']:6.1f}x")
    print(f"  ours (numpy) / torch autograd (cpu): {ours / rates['torch autograd (cpu)']:6.2f}x")
    print(f"  ours (torch cpu) / torch autograd:   {rates['ours (torch cpu)'] / rates['torch autograd (cpu)']:6.2f}x")
    if "ours (torch cuda)" in rates:
        print(f"  ours (torch cuda) / autograd (cuda): "
              f"{rates['ours (torch cuda)'] / rates['torch autograd (cuda)']:6.2f}x")
    assert all(rate > 0 for rate in rates.values())
