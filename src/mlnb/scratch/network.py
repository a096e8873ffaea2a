"""The blog's from-scratch back-propagation network (posts 09-13), vectorised over a batch.

Written once against the array API (``array-api-compat``): the same code trains on numpy
arrays on the CPU and on torch tensors on the CPU or a CUDA device; gradients are worked
out by hand, never by autograd.

Shapes: layer sizes ``(n_0, n_1, ..., n_L)`` are ``n_0`` inputs and ``L`` layers of nodes.
Layer ``l`` has weights ``W_l`` (``n_l x n_{l-1}``) from the layer before it and ``b_l``
(``n_l``) from that layer's bias node, a node whose output is always 1: ``b_l`` is the extra
column of the blog's ``n_l x (n_{l-1} + 1)`` matrix, kept apart so that no column of ones is
stacked onto every batch. Data come as rows, one example per row (``B x n``).

Forward: ``z_l = O_{l-1} W_l^T + b_l`` and ``O_l = f_l(z_l)``, with ``O_0`` the inputs.
Error: the blog's summed squared error ``E = sum (O_L - T)^2``. Back-propagation uses the
blog's deltas ``d_L = f_L'(z_L) * (O_L - T)`` and ``d_l = f_l'(z_l) * (d_{l+1} W_{l+1})``,
which are the gradient of ``E / 2`` (of ``E / 2B`` with ``reduction="mean"``, for
mini-batches). The update with learning rate ``eta`` and momentum ``m`` is the blog's
``dW(t) = eta dE/dW + m dW(t-1)``, ``W -= dW``: the same steps as torch's SGD with momentum.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import array_api_compat
import numpy as np

from mlnb.errors import ConfigError, DataError
from mlnb.io import atomic_path


@dataclasses.dataclass(frozen=True)
class Transfer:
    """A transfer (activation) function and its back-propagation rule.

    ``backward(xp, grad, z, out)`` returns ``grad * f'(z)``, given the layer's input ``z``
    and output ``out = f(z)`` (whichever of the two the derivative is cheaper from).
    """

    value: Callable[[Any, Any], Any]
    backward: Callable[[Any, Any, Any, Any], Any]


def _where(xp, condition, grad):
    """``grad`` where ``condition`` holds, 0 elsewhere."""
    return grad * xp.astype(condition, grad.dtype)


#: The transfer functions of the blog's post 12 (the ramp with its thresholds at 0 and 1).
#: Kinks (ReLU and ramp at their corners) take the derivative 0.
TRANSFERS: dict[str, Transfer] = {
    "linear": Transfer(lambda xp, z: z, lambda xp, grad, z, out: grad),
    # 1 / (1 + e^-z) written with tanh: the same function, with no overflow for large |z|.
    "sigmoid": Transfer(lambda xp, z: 0.5 + 0.5 * xp.tanh(0.5 * z),
                        lambda xp, grad, z, out: grad * out * (1 - out)),
    "tanh": Transfer(lambda xp, z: xp.tanh(z), lambda xp, grad, z, out: grad * (1 - out * out)),
    "gaussian": Transfer(lambda xp, z: xp.exp(-z * z), lambda xp, grad, z, out: grad * (-2 * z * out)),
    "relu": Transfer(lambda xp, z: xp.clip(z, min=0), lambda xp, grad, z, out: _where(xp, z > 0, grad)),
    "ramp": Transfer(lambda xp, z: xp.clip(z, min=0, max=1),
                     lambda xp, grad, z, out: _where(xp, (z > 0) & (z < 1), grad)),
    # Heaviside step at 0 (the bias node sets the threshold). Its derivative is 0 wherever it
    # exists (a Dirac delta at 0), so exact back-propagation could never train a step layer or
    # anything below it; the blog notes the step is not used with back-propagation. mlnb uses
    # the straight-through estimator instead: the backward pass treats the step as the ramp of
    # unit width centred on its threshold (derivative 1 for |z| < 1/2, else 0), whose limit as
    # the width shrinks is the step. Finite differences therefore do not check a step layer.
    "step": Transfer(lambda xp, z: xp.astype(z > 0, z.dtype),
                     lambda xp, grad, z, out: _where(xp, (z > -0.5) & (z < 0.5), grad)),
}

REDUCTIONS = ("sum", "mean")


def check_layers(layer_sizes: Sequence[int], transfers: Sequence[str]) -> None:
    """Raise ConfigError unless the sizes and one transfer function per non-input layer match."""
    sizes = list(layer_sizes)
    if len(sizes) < 2:
        raise ConfigError(f"layers {sizes}: need an input size and at least one layer of nodes")
    if any(not isinstance(size, int | np.integer) or isinstance(size, bool) or size < 1 for size in sizes):
        raise ConfigError(f"layers {sizes}: every layer size must be a positive integer")
    if len(transfers) != len(sizes) - 1:
        raise ConfigError(
            f"layers {sizes} need {len(sizes) - 1} transfer function(s), one per layer after the input, "
            f"got {len(transfers)}: {list(transfers)}")
    unknown = [name for name in transfers if name not in TRANSFERS]
    if unknown:
        raise ConfigError(f"unknown transfer function(s) {unknown}; choose from {', '.join(TRANSFERS)}")


def to_numpy(array) -> np.ndarray:
    """A numpy copy (or view) of a numpy array or a torch tensor on any device."""
    if array_api_compat.is_torch_array(array):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def one_hot(labels, classes: int, like) -> Any:
    """Integer labels as rows of targets (1 at the label, 0 elsewhere), in ``like``'s namespace, dtype, device.

    Raises DataError for non-integer labels or labels outside ``0..classes-1``.
    """
    values = to_numpy(labels)
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
        raise DataError(f"labels: expected a 1-D integer array, got shape {values.shape} of {values.dtype}")
    outside = np.unique(values[(values < 0) | (values >= classes)])
    if outside.size:
        raise DataError(f"labels out of range: {outside[:5].tolist()} not in 0..{classes - 1} "
                        f"(the output layer has {classes} nodes)")
    xp = array_api_compat.array_namespace(like)
    device = array_api_compat.device(like)
    matches = xp.asarray(values, device=device)[:, None] == xp.arange(classes, device=device)
    return xp.astype(matches, like.dtype)


class Network:
    """A fully connected network trained by back-propagation with momentum (see the module docstring)."""

    def __init__(self, weights: Sequence, biases: Sequence, transfers: Sequence[str]):
        if len(weights) != len(biases) or not weights:
            raise ConfigError(f"a network needs one bias vector per weight matrix (got {len(weights)} weight "
                              f"matrices, {len(biases)} bias vectors)")
        sizes = [weights[0].shape[1], *(w.shape[0] for w in weights)]
        check_layers(sizes, transfers)
        for layer, (w, b) in enumerate(zip(weights, biases, strict=True), start=1):
            if tuple(w.shape) != (sizes[layer], sizes[layer - 1]) or tuple(b.shape) != (sizes[layer],):
                raise ConfigError(f"layer {layer}: weights {tuple(w.shape)} and biases {tuple(b.shape)} do not "
                                  f"connect {sizes[layer - 1]} nodes to {sizes[layer]}")
        self.xp = array_api_compat.array_namespace(*weights, *biases)
        self.transfers = tuple(transfers)
        self.weights = list(weights)
        self.biases = list(biases)
        self._weight_steps = [self.xp.zeros_like(w) for w in self.weights]
        self._bias_steps = [self.xp.zeros_like(b) for b in self.biases]

    @classmethod
    def initialise(cls, layer_sizes: Sequence[int], transfers: Sequence[str], rng: np.random.Generator, *,
                   xp=None, device=None, dtype: str = "float64", scale: float = 0.1) -> Network:
        """The blog's start: every weight, bias-node weights too, drawn from N(0, scale^2).

        The draws come from the numpy generator ``rng`` whatever the namespace ``xp``
        (default numpy), so numpy and torch networks start from the same weights.
        """
        check_layers(layer_sizes, transfers)
        xp = xp if xp is not None else array_api_compat.array_namespace(np.empty(0))
        dtype = getattr(xp, dtype)
        weights, biases = [], []
        for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:], strict=True):
            matrix = rng.normal(scale=scale, size=(n_out, n_in + 1))  # the blog's layout: bias node last
            weights.append(xp.asarray(matrix[:, :-1].copy(), dtype=dtype, device=device))
            biases.append(xp.asarray(matrix[:, -1].copy(), dtype=dtype, device=device))
        return cls(weights, biases, transfers)

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        return (int(self.weights[0].shape[1]), *(int(w.shape[0]) for w in self.weights))

    def _check(self, inputs, targets=None) -> None:
        width = self.layer_sizes[0]
        if inputs.ndim != 2 or inputs.shape[1] != width:
            raise DataError(f"inputs: expected rows of {width} values (the input layer's width), "
                            f"got shape {tuple(inputs.shape)}")
        if inputs.shape[0] == 0:
            raise DataError("inputs: empty batch (0 rows)")
        if targets is not None and tuple(targets.shape) != (inputs.shape[0], self.layer_sizes[-1]):
            raise DataError(f"targets: expected shape ({inputs.shape[0]}, {self.layer_sizes[-1]}) "
                            f"(one row of {self.layer_sizes[-1]} outputs per input row), "
                            f"got {tuple(targets.shape)}")

    def _forward(self, inputs) -> tuple[list, list]:
        """Every layer's input ``z_l`` and output ``O_l`` (``outputs[0]`` is the input batch)."""
        layer_inputs, outputs = [], [inputs]
        for w, b, name in zip(self.weights, self.biases, self.transfers, strict=True):
            z = self.xp.matmul(outputs[-1], w.T) + b
            layer_inputs.append(z)
            outputs.append(TRANSFERS[name].value(self.xp, z))
        return layer_inputs, outputs

    def forward(self, inputs):
        """The output layer's values for a batch of input rows."""
        self._check(inputs)
        return self._forward(inputs)[1][-1]

    def targets(self, labels):
        """Class labels as one-hot target rows for this network's output layer (see :func:`one_hot`)."""
        return one_hot(labels, self.layer_sizes[-1], like=self.weights[0])

    def predict(self, inputs):
        """The index of the largest output of each row (the class, for one-hot targets)."""
        return self.xp.argmax(self.forward(inputs), axis=1)

    def gradients(self, inputs, targets, reduction: str = "sum") -> tuple[Any, list, list]:
        """(E, dL/dW per layer, dL/db per layer) with ``L = E/2`` (``E/2B`` for ``reduction="mean"``)."""
        if reduction not in REDUCTIONS:
            raise ConfigError(f"reduction {reduction!r}: choose from {', '.join(REDUCTIONS)}")
        self._check(inputs, targets)
        xp = self.xp
        layer_inputs, outputs = self._forward(inputs)
        residual = outputs[-1] - targets
        error = xp.sum(residual * residual)
        if reduction == "mean":
            residual = residual / inputs.shape[0]
        weight_grads, bias_grads = [None] * len(self.weights), [None] * len(self.weights)
        delta = residual
        for layer in reversed(range(len(self.weights))):
            delta = TRANSFERS[self.transfers[layer]].backward(xp, delta, layer_inputs[layer], outputs[layer + 1])
            weight_grads[layer] = xp.matmul(delta.T, outputs[layer])
            bias_grads[layer] = xp.sum(delta, axis=0)
            if layer:
                delta = xp.matmul(delta, self.weights[layer])
        return error, weight_grads, bias_grads

    def train_step(self, inputs, targets, learning_rate: float, momentum: float = 0.0,
                   reduction: str = "sum"):
        """One back-propagation update on a batch; returns the batch's E before the update (0-d array)."""
        error, weight_grads, bias_grads = self.gradients(inputs, targets, reduction)
        for layer, (weight_grad, bias_grad) in enumerate(zip(weight_grads, bias_grads, strict=True)):
            self._weight_steps[layer] = learning_rate * weight_grad + momentum * self._weight_steps[layer]
            self._bias_steps[layer] = learning_rate * bias_grad + momentum * self._bias_steps[layer]
            self.weights[layer] = self.weights[layer] - self._weight_steps[layer]
            self.biases[layer] = self.biases[layer] - self._bias_steps[layer]
        return error

    def state_dict(self) -> dict[str, Any]:
        """Weights, bias-node weights and the momentum terms as CPU torch tensors (for mlnb.training.checkpoint)."""
        import torch

        arrays = {"weights": self.weights, "biases": self.biases, "weight_steps": self._weight_steps,
                  "bias_steps": self._bias_steps}
        return {f"{kind}_{layer}": torch.from_numpy(np.array(to_numpy(array)))
                for kind, layers in arrays.items() for layer, array in enumerate(layers)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`'s tensors, exactly, in this network's namespace, dtype and device."""
        expected = self.state_dict()
        if set(state) != set(expected):
            raise DataError(f"network state holds {sorted(state)}, expected {sorted(expected)}")
        for key, tensor in state.items():
            if tuple(tensor.shape) != tuple(expected[key].shape) or tensor.dtype != expected[key].dtype:
                raise DataError(f"network state {key}: {tensor.dtype} {tuple(tensor.shape)}, expected "
                                f"{expected[key].dtype} {tuple(expected[key].shape)}")
        like = self.weights[0]
        device = array_api_compat.device(like)

        def restored(kind: str) -> list:
            return [self.xp.asarray(state[f"{kind}_{layer}"].numpy(), dtype=like.dtype, device=device, copy=True)
                    for layer in range(len(self.weights))]

        self.weights, self.biases = restored("weights"), restored("biases")
        self._weight_steps, self._bias_steps = restored("weight_steps"), restored("bias_steps")

    def save(self, path: str | os.PathLike) -> None:
        """Weights, bias-node weights and transfer functions as an ``.npz`` (written atomically)."""
        arrays = {f"weights_{layer}": to_numpy(w) for layer, w in enumerate(self.weights)}
        arrays.update({f"biases_{layer}": to_numpy(b) for layer, b in enumerate(self.biases)})
        with atomic_path(path) as tmp:
            np.savez(tmp, transfers=np.array(self.transfers), **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike, *, xp=None, device=None) -> Network:
        """A network saved by :meth:`save` (no pickles), in namespace ``xp`` (default numpy) on ``device``."""
        xp = xp if xp is not None else array_api_compat.array_namespace(np.empty(0))
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                transfers = [str(name) for name in data["transfers"]]
                layers = range(len(transfers))
                weights = [xp.asarray(data[f"weights_{layer}"], device=device) for layer in layers]
                biases = [xp.asarray(data[f"biases_{layer}"], device=device) for layer in layers]
        except (OSError, KeyError, ValueError) as error:
            raise DataError(f"{path}: not a saved network ({error})") from None
        return cls(weights, biases, transfers)
