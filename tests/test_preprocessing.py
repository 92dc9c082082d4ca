"""The clamp inside every model's forward: values like torch.clamp, gradient through the bounds."""

import pytest
import torch

from finetune_invariance.preprocessing import InputNormalization, clamp_unit_interval


def test_clamp_values_match_the_interval():
    x = torch.tensor([-2.0, -1e-7, 0.0, 0.3, 1.0, 1.0 + 1e-6, 5.0])
    assert torch.equal(clamp_unit_interval(x), torch.tensor([0.0, 0.0, 0.0, 0.3, 1.0, 1.0, 1.0]))


def test_clamp_gradient_is_one_on_and_inside_the_bounds_and_zero_outside():
    x = torch.tensor([-0.5, 0.0, 0.25, 1.0, 1.5], requires_grad=True)
    clamp_unit_interval(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]


def test_torch_clamp_would_block_the_bounds():
    # The reason the custom clamp exists: if this ever changes, the custom clamp is moot.
    x = torch.tensor([0.0, 1.0], requires_grad=True)
    x.clamp(0, 1).sum().backward()
    assert x.grad.tolist() != [1.0, 1.0]


def test_input_normalization_clamps_then_standardises_per_channel():
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    x = torch.rand(2, 3, 4, 4) * 1.4 - 0.2
    expected = (x.clamp(0, 1) - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(InputNormalization(mean, std)(x), expected)


def test_input_normalization_rejects_bad_statistics():
    with pytest.raises(ValueError, match="3 channels but std has 2"):
        InputNormalization((0.1, 0.2, 0.3), (1.0, 1.0))
    with pytest.raises(ValueError, match="std must be positive"):
        InputNormalization((0.1,), (0.0,))
