"""Training data: pairing, patches, augmentation, deterministic order and sharding, degradation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from restorekit.data import (
    DatasetConfig,
    DegradationConfig,
    Degrader,
    PatchConfig,
    PatchDataset,
    StepSampler,
    build_train_dataset,
    build_val_set,
    dihedral,
    find_pairs,
    make_loader,
    mix_seed,
)
from restorekit.errors import RestoreKitError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _save(path: Path, size: tuple[int, int] = (24, 24), rgb: bool = False, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if rgb else (size[1], size[0])
    Image.fromarray((rng.random(shape) * 255).astype(np.uint8)).save(path)
    return path


def _images(n: int, size: int = 16, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, size, size, generator=g) for _ in range(n)]


# --------------------------------------------------------------------------- files


def test_paired_folders_match_by_name(tmp_path: Path) -> None:
    for name in ("1", "2"):
        _save(tmp_path / "a" / "input" / f"{name}.png")
        _save(tmp_path / "a" / "target" / f"{name}.jpg")
    pairs = find_pairs(DatasetConfig(root=[str(tmp_path / "a")], kind="paired"), "train")
    assert [(i.name, t.name) for i, t in pairs] == [("1.png", "1.jpg"), ("2.png", "2.jpg")]

    for name in ("cam_a", "cam_b"):
        _save(tmp_path / "b" / f"{name}_real.png")
        _save(tmp_path / "b" / f"{name}_mean.png")
    cfg = DatasetConfig(root=[str(tmp_path / "b")], kind="paired", input="*_real.png", target="*_mean.png")
    assert [i.name for i, _ in find_pairs(cfg, "train")] == ["cam_a_real.png", "cam_b_real.png"]

    _save(tmp_path / "b" / "cam_c_real.png")
    with pytest.raises(RestoreKitError, match="without a partner.*cam_c"):
        find_pairs(cfg, "train")


def test_missing_root_says_how_to_set_it(tmp_path: Path) -> None:
    with pytest.raises(RestoreKitError, match=r"data.val.root: .* does not exist.*--set data.val.root=PATH"):
        build_val_set(DatasetConfig(root=[str(tmp_path / "no")], degradation=DegradationConfig()), 1)


def test_channels_and_resize_on_loading(tmp_path: Path) -> None:
    _save(tmp_path / "c" / "rgb.png", (30, 20), rgb=True)
    gray = build_train_dataset(DatasetConfig(root=[str(tmp_path / "c")]), 1)
    assert gray.targets[0].shape == (1, 20, 30)
    rgb = build_train_dataset(DatasetConfig(root=[str(tmp_path / "c")], resize=[16, 8]), 3)
    assert rgb.targets[0].shape == (3, 8, 16) and 0 <= rgb.targets[0].min() and rgb.targets[0].max() <= 1


# --------------------------------------------------------------------------- patches


def test_grid_patches_follow_the_dncnn_prepare_step() -> None:
    # 60 px at scales 1/.9/.8/.7 = 60/54/48/42 px: 5² + 4² + 3² + 3² patches of 20 at stride 10
    ds = PatchDataset(_images(2, 60), None, PatchConfig(size=20, mode="grid", stride=10, scales=[1, 0.9, 0.8, 0.7]))
    assert len(ds) == 2 * (25 + 16 + 9 + 9)
    assert ds[(0, 0, 0)]["target"].shape == (1, 20, 20)


@pytest.mark.skipif(not (SHARED / "denoise" / "BSD400").is_dir(), reason="../shared/data/denoise/BSD400 is absent")
def test_bsd400_gives_saoyans_238400_patches() -> None:
    cfg = DatasetConfig(root=[str(SHARED / "denoise" / "BSD400")],
                        patch=PatchConfig(size=40, mode="grid", stride=10, scales=[1, 0.9, 0.8, 0.7]), max_images=20)
    assert len(build_train_dataset(cfg, 1)) == 20 * 596  # 238,400 for the 400 images


def test_samples_are_a_function_of_their_key() -> None:
    ds = PatchDataset(_images(3, 32), None, PatchConfig(size=8, per_image=2), augment="x8", seed=5)
    assert len(ds) == 6
    a, b = ds[(0, 1, 4)], ds[(0, 1, 4)]
    assert torch.equal(a["target"], b["target"]) and a["seed"] == b["seed"]
    other = ds[(1, 1, 4)]
    assert not torch.equal(a["target"], other["target"]) and a["seed"] != other["seed"]


def test_flips_and_rotations() -> None:
    img = torch.arange(16.0).view(1, 4, 4)
    assert len({tuple(dihedral(img, m).flatten().tolist()) for m in range(8)}) == 8
    assert torch.equal(dihedral(img, 0), img)
    ds = PatchDataset([img], None, PatchConfig(size=4), augment="hflip")
    seen = {tuple(ds[(0, p, 0)]["target"].flatten().tolist()) for p in range(20)}
    assert seen == {tuple(img.flatten().tolist()), tuple(img.flip(-1).flatten().tolist())}


def test_paired_crops_stay_aligned() -> None:
    targets = _images(2, 32)
    ds = PatchDataset(targets, [t * 0.5 for t in targets], PatchConfig(size=8), augment="x8")
    for p in range(5):
        item = ds[(0, p, p % 2)]
        assert torch.allclose(item["input"], item["target"] * 0.5)


# --------------------------------------------------------------------------- order and sharding


def test_step_sampler_is_deterministic_resumable_and_shards_exactly() -> None:
    full = list(StepSampler(10, 4, seed=3, total=6))
    assert full == list(StepSampler(10, 4, seed=3, total=6))
    assert list(StepSampler(10, 4, seed=3, start=4, total=6)) == full[4:]
    shards = [list(StepSampler(10, 4, seed=3, rank=r, world_size=2, total=6)) for r in range(2)]
    assert [a + b for a, b in zip(*shards)] == full
    # 2 steps per epoch; epoch e uses a fresh permutation and each index at most once
    assert [k[0] for k in full[0]] == [0] * 4 and full[2][0][0] == 1
    epoch0 = [k[2] for b in full[:2] for k in b]
    assert len(set(epoch0)) == 8 and epoch0 != [k[2] for b in full[2:4] for k in b]
    tiny = list(StepSampler(3, 4, total=2))  # a set smaller than a batch still fills it
    assert all(len(b) == 4 for b in tiny)
    with pytest.raises(RestoreKitError, match="not divisible"):
        StepSampler(10, 5, world_size=2)


def test_loader_workers_give_the_same_batches(tmp_path: Path) -> None:
    ds = PatchDataset(_images(6, 16), None, PatchConfig(size=8), augment="x8")
    batches = [list(make_loader(ds, StepSampler(6, 2, total=3), num_workers=w)) for w in (0, 1)]
    for a, b in zip(*batches):
        assert torch.equal(a["target"], b["target"]) and torch.equal(a["seed"], b["seed"])


# --------------------------------------------------------------------------- degradation


def test_degrader_is_seeded_per_sample() -> None:
    clean = torch.rand(4, 1, 8, 8)
    seeds = torch.tensor([mix_seed(i) for i in range(4)])
    deg = Degrader(DegradationConfig("gaussian-noise", {"sigma_range": [0, 55]}))
    full = deg(clean, seeds)
    assert torch.equal(full, deg(clean, seeds))
    assert torch.equal(full[2:], deg(clean[2:], seeds[2:])), "a sample's noise must not depend on its batch"
    assert not torch.equal(full, deg(clean, seeds, salt=1)), "each local step draws fresh noise"
    with pytest.raises(RestoreKitError, match="did you mean 'gaussian-noise'"):
        Degrader(DegradationConfig("gaussian-nois"))


def test_validation_noise_is_seeded_by_image_name(tmp_path: Path) -> None:
    _save(tmp_path / "one" / "b.png", (20, 20), seed=1)
    _save(tmp_path / "two" / "a.png", (20, 20), seed=2)
    _save(tmp_path / "two" / "b.png", (20, 20), seed=1)
    noise = DegradationConfig("gaussian-noise", {"sigma": 25})
    alone = build_val_set(DatasetConfig(root=[str(tmp_path / "one")], degradation=noise), 1)
    both = build_val_set(DatasetConfig(root=[str(tmp_path / "two")], degradation=noise), 1)
    assert [v.name for v in both] == ["a.png", "b.png"]
    assert torch.equal(alone[0].input, both[1].input)
    cropped = build_val_set(DatasetConfig(root=[str(tmp_path / "two")], degradation=noise, center_crop=12), 1)
    assert cropped[0].input.shape == cropped[0].target.shape == (1, 1, 12, 12)
