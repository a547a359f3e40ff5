import torch
import pytest

from restorekit.degradations.noise import add_gaussian_noise, add_named_gaussian_noise, seed_for
from restorekit.errors import RestoreKitError


def test_noise_is_seeded_by_name_not_order():
    clean = torch.full((1, 1, 32, 32), 0.5)
    a1 = add_named_gaussian_noise(clean, 25, "a.png")
    add_named_gaussian_noise(clean, 25, "b.png")
    a2 = add_named_gaussian_noise(clean, 25, "a.png")
    assert torch.equal(a1, a2)
    assert not torch.equal(a1, add_named_gaussian_noise(clean, 25, "b.png"))
    assert seed_for("a.png") == seed_for("a.png") != seed_for("a.png", 1)


def test_noise_level_on_255_scale():
    clean = torch.zeros(1, 1, 256, 256)
    noisy = add_gaussian_noise(clean, 25, generator=torch.Generator().manual_seed(0))
    assert abs(noisy.std().item() - 25 / 255) < 0.002
    assert noisy.min() < 0  # not clipped by default
    clipped = add_gaussian_noise(clean, 25, generator=torch.Generator().manual_seed(0), clip=True)
    assert clipped.min() == 0


def test_per_image_sigma_and_errors():
    clean = torch.zeros(2, 1, 64, 64)
    noisy = add_gaussian_noise(clean, torch.tensor([0.0, 50.0]), generator=torch.Generator().manual_seed(0))
    assert noisy[0].abs().max() == 0 and noisy[1].std() > 0.15
    with pytest.raises(RestoreKitError):
        add_gaussian_noise(clean, -1)
    with pytest.raises(RestoreKitError):
        add_gaussian_noise(clean, torch.tensor([1.0, 2.0, 3.0]))
