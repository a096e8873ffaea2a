"""The from-scratch network: hand-written gradients, numpy and torch agreeing, clear errors."""

from __future__ import annotations

import array_api_compat
import numpy as np
import pytest
import torch

from mlnb.errors import ConfigError, DataError
from mlnb.rng import generator
from mlnb.scratch.network import TRANSFERS, Network, one_hot, to_numpy

TORCH = array_api_compat.array_namespace(torch.zeros(1))
SMOOTH = [name for name in TRANSFERS if name != "step"]


def batch(rows: int, width: int, outputs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = generator(seed, "test-batch")
    return rng.normal(size=(rows, width)), rng.normal(size=(rows, outputs))


def numeric_gradient(loss, array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of ``loss()`` with respect to every entry of ``array`` (changed in place)."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + eps
        up = loss()
        array[index] = saved - eps
        down = loss()
        array[index] = saved
        grad[index] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("hidden", SMOOTH)
@pytest.mark.parametrize("output", ["linear", "sigmoid", "tanh"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_gradients_match_finite_differences(hidden, output, reduction):
    # scale 1: pre-activations spread over ramp's and ReLU's kinks and gaussian's curvature
    net = Network.initialise((3, 4, 3, 2), [hidden, hidden, output], generator(1, "fd"), scale=1.0)
    inputs, targets = batch(5, 3, 2)
    rows = inputs.shape[0] if reduction == "mean" else 1

    def loss() -> float:
        return float(np.sum((net.forward(inputs) - targets) ** 2)) / (2 * rows)

    error, weight_grads, bias_grads = net.gradients(inputs, targets, reduction)
    assert float(error) == pytest.approx(2 * rows * loss(), rel=1e-12)
    for layer in range(3):
        np.testing.assert_allclose(weight_grads[layer], numeric_gradient(loss, net.weights[layer]),
                                   rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(bias_grads[layer], numeric_gradient(loss, net.biases[layer]),
                                   rtol=1e-6, atol=1e-8)


def test_transfer_functions_values():
    z = np.array([-2.0, -0.25, 0.0, 0.25, 0.5, 2.0])
    xp = array_api_compat.array_namespace(z)
    expected = {
        "linear": z,
        "sigmoid": 1 / (1 + np.exp(-z)),
        "tanh": np.tanh(z),
        "gaussian": np.exp(-z**2),
        "relu": [0, 0, 0, 0.25, 0.5, 2],
        "ramp": [0, 0, 0, 0.25, 0.5, 1],
        "step": [0, 0, 0, 1, 1, 1],
    }
    for name, values in expected.items():
        np.testing.assert_allclose(TRANSFERS[name].value(xp, z), values, rtol=1e-15, err_msg=name)


def test_step_backpropagates_straight_through_near_its_threshold():
    z = np.array([-1.0, -0.49, 0.0, 0.49, 1.0])
    xp = array_api_compat.array_namespace(z)
    grad = np.full_like(z, 3.0)
    backward = TRANSFERS["step"].backward(xp, grad, z, TRANSFERS["step"].value(xp, z))
    np.testing.assert_array_equal(backward, [0, 3, 3, 3, 0])


def test_a_step_output_learns_a_linearly_separable_gate():
    inputs = np.array([[0, 0], [1, 1], [0, 1], [1, 0]], float)
    targets = np.array([[0], [1], [0], [0]], float)  # AND
    net = Network.initialise((2, 1), ["step"], generator(3, "step"))
    for _ in range(200):
        net.train_step(inputs, targets, learning_rate=0.1, momentum=0.5)
    np.testing.assert_array_equal(net.forward(inputs), targets)


def torch_net(net: Network, dtype=torch.float64) -> Network:
    return Network([torch.tensor(w, dtype=dtype) for w in net.weights],
                   [torch.tensor(b, dtype=dtype) for b in net.biases], net.transfers)


@pytest.mark.parametrize("transfers", [["sigmoid", "linear"], ["tanh", "sigmoid"], ["relu", "gaussian"],
                                       ["ramp", "linear"], ["step", "linear"]])
def test_numpy_and_torch_train_to_the_same_weights(transfers):
    inputs, targets = batch(16, 6, 3, seed=2)
    net = Network.initialise((6, 5, 3), transfers, generator(4, "agree"), scale=0.5)
    twin = torch_net(net)
    assert array_api_compat.is_torch_namespace(twin.xp)
    for _ in range(25):
        error = net.train_step(inputs, targets, 0.05, 0.9, reduction="mean")
        twin_error = twin.train_step(torch.from_numpy(inputs), torch.from_numpy(targets), 0.05, 0.9,
                                     reduction="mean")
        assert float(twin_error) == pytest.approx(float(error), rel=1e-12)
    for ours, theirs in zip(net.weights + net.biases, twin.weights + twin.biases, strict=True):
        np.testing.assert_allclose(to_numpy(theirs), ours, rtol=1e-10, atol=1e-12)


def test_float32_numpy_and_torch_agree_to_float32_tolerance():
    inputs, targets = batch(32, 8, 4, seed=5)
    net = Network.initialise((8, 16, 4), ["sigmoid", "linear"], generator(6, "f32"), dtype="float32")
    twin = torch_net(net, torch.float32)
    for _ in range(10):
        net.train_step(inputs.astype(np.float32), targets.astype(np.float32), 0.1, 0.5, "mean")
        twin.train_step(torch.from_numpy(inputs).float(), torch.from_numpy(targets).float(), 0.1, 0.5, "mean")
    assert net.weights[0].dtype == np.float32
    np.testing.assert_allclose(to_numpy(twin.weights[0]), net.weights[0], rtol=1e-4, atol=1e-6)


def autograd_net(net: Network) -> tuple[list[torch.Tensor], callable]:
    """The same network written with torch autograd: its parameters and a forward function."""
    params = [torch.tensor(p, requires_grad=True) for pair in zip(net.weights, net.biases, strict=True)
              for p in pair]
    functions = {"linear": lambda z: z, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
                 "gaussian": lambda z: torch.exp(-z * z), "relu": torch.relu}

    def forward(inputs):
        out = inputs
        for layer, name in enumerate(net.transfers):
            out = functions[name](out @ params[2 * layer].T + params[2 * layer + 1])
        return out

    return params, forward


def test_gradients_agree_with_torch_autograd_on_the_same_weights():
    inputs, targets = batch(7, 4, 3, seed=7)
    net = Network.initialise((4, 6, 5, 3), ["tanh", "relu", "sigmoid"], generator(8, "autograd"), scale=1.0)
    params, forward = autograd_net(net)
    loss = ((forward(torch.from_numpy(inputs)) - torch.from_numpy(targets)) ** 2).sum() / 2
    loss.backward()
    _, weight_grads, bias_grads = net.gradients(inputs, targets)
    ours = [g for pair in zip(weight_grads, bias_grads, strict=True) for g in pair]
    for mine, param in zip(ours, params, strict=True):
        np.testing.assert_allclose(mine, param.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_momentum_steps_equal_torch_sgd_with_momentum():
    inputs, targets = batch(10, 3, 2, seed=9)
    net = Network.initialise((3, 4, 2), ["sigmoid", "linear"], generator(10, "sgd"), scale=1.0)
    params, forward = autograd_net(net)
    optimizer = torch.optim.SGD(params, lr=0.2, momentum=0.5)
    for _ in range(20):
        net.train_step(inputs, targets, 0.2, 0.5, reduction="mean")
        optimizer.zero_grad()
        (((forward(torch.from_numpy(inputs)) - torch.from_numpy(targets)) ** 2).sum() / (2 * 10)).backward()
        optimizer.step()
    mine = [p for pair in zip(net.weights, net.biases, strict=True) for p in pair]
    for ours, theirs in zip(mine, params, strict=True):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_initialisation_is_the_same_for_numpy_and_torch_and_set_by_the_seed():
    a = Network.initialise((5, 3, 2), ["tanh", "linear"], generator(11, "init"))
    b = Network.initialise((5, 3, 2), ["tanh", "linear"], generator(11, "init"), xp=TORCH, dtype="float32")
    c = Network.initialise((5, 3, 2), ["tanh", "linear"], generator(12, "init"))
    assert b.weights[0].dtype == torch.float32
    np.testing.assert_allclose(to_numpy(b.weights[1]), a.weights[1], rtol=1e-6)
    assert not np.allclose(a.weights[0], c.weights[0])
    assert a.layer_sizes == (5, 3, 2)


def test_save_and_load_round_trip(tmp_path):
    net = Network.initialise((4, 3, 2), ["relu", "sigmoid"], generator(13, "save"))
    net.save(tmp_path / "net.npz")
    inputs, _ = batch(3, 4, 2)
    again = Network.load(tmp_path / "net.npz")
    np.testing.assert_array_equal(again.forward(inputs), net.forward(inputs))
    on_torch = Network.load(tmp_path / "net.npz", xp=TORCH)
    np.testing.assert_allclose(to_numpy(on_torch.forward(torch.from_numpy(inputs))), net.forward(inputs))
    assert [p.name for p in tmp_path.iterdir()] == ["net.npz"]


def test_state_dict_carries_momentum_so_the_next_step_is_the_same():
    """A network restored from state_dict takes exactly the step the original takes (on torch: the same step,
    to the last bits in which torch's and numpy's matrix products differ)."""
    net = Network.initialise((4, 3, 2), ["sigmoid", "sigmoid"], generator(13, "state"), dtype="float64")
    inputs, targets = batch(5, 4, 2)
    net.train_step(inputs, targets, 0.5, momentum=0.9)
    state = net.state_dict()
    assert sorted(state) == ["bias_steps_0", "bias_steps_1", "biases_0", "biases_1", "weight_steps_0",
                             "weight_steps_1", "weights_0", "weights_1"]
    again = Network.initialise((4, 3, 2), ["sigmoid", "sigmoid"], generator(14, "other"), dtype="float64")
    on_torch = Network.initialise((4, 3, 2), ["sigmoid", "sigmoid"], generator(15, "other"), xp=TORCH,
                                  dtype="float64")
    again.load_state_dict(state)
    on_torch.load_state_dict(state)
    for other in (again, on_torch):
        other.train_step(other.xp.asarray(inputs), other.xp.asarray(targets), 0.5, momentum=0.9)
    net.train_step(inputs, targets, 0.5, momentum=0.9)
    for layer in range(2):
        np.testing.assert_array_equal(again.weights[layer], net.weights[layer])
        np.testing.assert_allclose(to_numpy(on_torch.weights[layer]), net.weights[layer], rtol=1e-13, atol=1e-15)


def test_load_state_dict_refuses_another_network():
    small = Network.initialise((4, 3, 2), ["sigmoid", "sigmoid"], generator(13, "state"))
    wide = Network.initialise((4, 5, 2), ["sigmoid", "sigmoid"], generator(13, "state"))
    with pytest.raises(DataError, match=r"network state weights_0: torch\.float64 \(5, 4\), expected torch\.float64 "
                                        r"\(3, 4\)"):
        small.load_state_dict(wide.state_dict())
    deeper = Network.initialise((4, 3, 3, 2), ["sigmoid"] * 3, generator(13, "state"))
    with pytest.raises(DataError, match=r"network state holds .*weights_2.*, expected"):
        small.load_state_dict(deeper.state_dict())


def test_load_refuses_a_file_that_is_not_a_network(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DataError, match=r"other\.npz: not a saved network"):
        Network.load(tmp_path / "other.npz")


def test_one_hot_targets_in_the_namespace_dtype_and_device():
    like = torch.zeros(1, dtype=torch.float32)
    targets = one_hot(np.array([2, 0, 1], np.uint8), 3, like)
    assert targets.dtype == torch.float32
    np.testing.assert_array_equal(targets.numpy(), np.eye(3)[[2, 0, 1]])


@pytest.mark.parametrize(("labels", "message"), [
    (np.array([0, 10, 3, -1]), r"labels out of range: \[-1, 10\] not in 0\.\.9 \(the output layer has 10 nodes\)"),
    (np.array([0.0, 1.0]), r"labels: expected a 1-D integer array, got shape \(2,\) of float64"),
    (np.zeros((2, 2), int), r"labels: expected a 1-D integer array, got shape \(2, 2\)"),
])
def test_bad_labels_are_refused(labels, message):
    net = Network.initialise((4, 10), ["linear"], generator(0, "labels"))
    with pytest.raises(DataError, match=message):
        net.targets(labels)


@pytest.mark.parametrize(("layers", "transfers", "message"), [
    ((2, 2, 1), ["sigmoid"], r"layers \[2, 2, 1\] need 2 transfer function\(s\), one per layer after the input, "
                             r"got 1: \['sigmoid'\]"),
    ((2, 2, 1), [None, "sigmoid", "linear"], r"need 2 transfer function\(s\).*got 3"),
    ((2, 2, 1), ["sigmoid", "softmax"], r"unknown transfer function\(s\) \['softmax'\]; choose from linear, "),
    ((2,), [], r"layers \[2\]: need an input size and at least one layer"),
    ((2, 0, 1), ["sigmoid", "linear"], r"layers \[2, 0, 1\]: every layer size must be a positive integer"),
])
def test_mismatched_layers_and_transfers_are_refused(layers, transfers, message):
    with pytest.raises(ConfigError, match=message):
        Network.initialise(layers, transfers, generator(0, "bad"))


def test_weights_that_do_not_connect_are_refused():
    with pytest.raises(ConfigError, match=r"layer 2: weights \(1, 3\) and biases \(1,\) do not connect 2 nodes to 1"):
        Network([np.zeros((2, 4)), np.zeros((1, 3))], [np.zeros(2), np.zeros(1)], ["tanh", "linear"])


@pytest.mark.parametrize(("inputs", "targets", "message"), [
    (np.zeros((4, 3)), np.zeros((4, 1)), r"inputs: expected rows of 2 values \(the input layer's width\), "
                                         r"got shape \(4, 3\)"),
    (np.zeros(2), np.zeros((1, 1)), r"inputs: expected rows of 2 values.*got shape \(2,\)"),
    (np.zeros((0, 2)), np.zeros((0, 1)), r"inputs: empty batch \(0 rows\)"),
    (np.zeros((4, 2)), np.zeros((4, 2)), r"targets: expected shape \(4, 1\).*got \(4, 2\)"),
])
def test_wrong_input_and_target_shapes_are_refused(inputs, targets, message):
    net = Network.initialise((2, 2, 1), ["sigmoid", "linear"], generator(0, "shapes"))
    with pytest.raises(DataError, match=message):
        net.train_step(inputs, targets, 0.2)


def test_unknown_reduction_is_refused():
    net = Network.initialise((2, 1), ["linear"], generator(0, "reduction"))
    with pytest.raises(ConfigError, match=r"reduction 'median': choose from sum, mean"):
        net.gradients(np.zeros((1, 2)), np.zeros((1, 1)), "median")
