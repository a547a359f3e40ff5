"""Shipped recipes: each validates, builds its model and data, and runs one training step and a
validation on tiny synthetic data (data roots overridden); recipes whose model is not registered skip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from restorekit.errors import RestoreKitError
from restorekit.models import list_models
from restorekit.recipes import CPU_SUFFIX, find_recipe, list_recipes, load_recipe
from restorekit.train.config import build_config, resolve_paths
from restorekit.train.distributed import DistInfo
from restorekit.train.loop import Trainer

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
# IPT at test scale: the real body is 115M parameters; the recipe's data path is what is tested.
SMALL_ARGS = {"ipt": {"n_feats": 8, "num_heads": 1, "num_layers": 1}}


def _write(path: Path, size: int, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    small = (rng.random((4, 4, 3)) * 255).astype(np.uint8)
    Image.fromarray(small).resize((size, size), Image.BICUBIC).save(path)


def _make_set(folder: Path, kind: str, input_glob: str, target_glob: str, size: int, n: int = 3) -> Path:
    rng = np.random.default_rng(len(str(folder)))
    for i in range(n):
        if kind == "paired":
            for pattern in (input_glob, target_glob):
                name = pattern.replace("*", f"p{i}", 1) + (".png" if pattern.endswith("*") else "")
                _write(folder / name, size, rng)
        else:
            _write(folder / f"c{i}.png", size, rng)
    return folder


def test_expected_recipes_ship() -> None:
    names = set(list_recipes())
    assert {"dncnn-s-15", "dncnn-s-25", "dncnn-s-50", "dncnn-b", "durn-p-gaussian", "durn-p-real", "durn-u-blur",
            "durn-us-haze", "durn-us-haze-dcpdn", "durn-s-rain", "durn-s-p-raindrop", "durn-s-p-raindrop-stage2",
            "mprnet-deblur", "mprnet-derain", "mprnet-denoise", "xdncnn", "ipt-pretrain", "ipt-finetune-sr-x2",
            "default-gray", "default-color"} <= names
    with pytest.raises(RestoreKitError, match="did you mean 'dncnn-s-25'"):
        find_recipe("dncnn-s25")


def test_recipe_settings_follow_the_papers() -> None:
    s25 = build_config(load_recipe("dncnn-s-25"))
    assert (s25.optim.lr, s25.train.batch_size, s25.train.epochs, s25.schedule.milestones) == (1e-3, 128, 50, [30])
    assert s25.data.train.patch.size == 40 and s25.data.train.patch.stride == 10 and s25.loss[0]["reduction"] == "sum_half_n"
    b = build_config(load_recipe("dncnn-b"))
    assert b.data.train.patch.size == 50 and b.data.train.degradation.params["sigma_range"] == [0, 55]
    assert build_config(load_recipe("dncnn-s-15")).data.val.degradation.params["sigma"] == 15
    durn = build_config(load_recipe("durn-p-gaussian"))
    assert durn.train.locally_training_num == 10 and durn.schedule.milestones == [500, 1000, 1500, 2500]
    assert durn.data.train.degradation.params["sigma_choices"] == [30, 50, 70]
    stage2 = build_config(load_recipe("durn-s-p-raindrop-stage2"))
    assert stage2.model.init_from and stage2.optim.lr == 1e-5 and stage2.loss == [{"name": "l1", "weight": 1.1}]
    mpr = build_config(load_recipe("mprnet-denoise"))
    assert mpr.train.mixup.start_epoch == 5 and mpr.train.clamp_outputs and mpr.optim.weight_decay == 1e-8
    assert mpr.schedule.name == "warmup-cosine" and mpr.schedule.warmup == 3 and mpr.schedule.eta_min == 1e-6


def test_recipes_name_their_data_sets() -> None:
    """Data roots are named sets (found as `restorekit eval --data NAME` finds them), not paths that
    hold only from the checkout's root."""
    for name in list_recipes():
        cfg = build_config(load_recipe(name))
        for ds in (cfg.data.train, cfg.data.val):
            for root in ds.root if ds else []:
                assert "/" not in root and "\\" not in root, f"{name}: {root} is a path, not a set's name"


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared is absent: recipe data paths cannot be checked")
def test_recipe_data_sets_are_found_from_any_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from restorekit.data import find_images, find_pairs

    monkeypatch.delenv("RESTOREKIT_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # not the checkout: the named sets are found beside it all the same
    shared_data = (SHARED / "data").resolve()
    for name in list_recipes():
        cfg = resolve_paths(build_config(load_recipe(name)))
        for split in ("train", "val"):
            ds = getattr(cfg.data, split)
            if ds is None:
                continue
            for root in ds.root:
                assert Path(root).is_dir() and shared_data in Path(root).parents, f"{name}: {root}"
            found = find_pairs(ds, split) if ds.kind == "paired" else find_images(ds, split)
            assert found, f"{name}: data.{split} finds no {'pairs' if ds.kind == 'paired' else 'images'}"


def test_every_recipe_has_a_cpu_sized_variant() -> None:
    names = list_recipes()
    papers = [n for n in names if not n.endswith(CPU_SUFFIX)]
    assert [n + CPU_SUFFIX for n in papers] == [n for n in names if n.endswith(CPU_SUFFIX)]
    for name in papers:
        full, cpu = build_config(load_recipe(name)), build_config(load_recipe(name + CPU_SUFFIX))
        assert cpu.name == name + CPU_SUFFIX and full.name == name
        assert (cpu.model.name, cpu.loss, cpu.data.train.root) == (full.model.name, full.loss, full.data.train.root)
        assert cpu.train.steps is not None and cpu.train.epochs is None, name
        assert cpu.train.precision == "auto" and cpu.train.channels_last, name
        assert cpu.schedule.unit == "step" or cpu.schedule.name == "constant", name
        full_steps = full.train.steps or full.train.epochs * 100  # an epoch is at least 100 steps in these recipes
        assert cpu.train.steps < full_steps and cpu.train.checkpoint_every <= cpu.train.steps, name
        assert cpu.train.batch_size <= full.train.batch_size, name


def test_cpu_variants_inherit_and_refine_their_bases() -> None:
    s15, s25, b = (build_config(load_recipe(n)) for n in ("dncnn-s-15-cpu", "dncnn-s-25-cpu", "dncnn-b-cpu"))
    assert s15.data.train.degradation.params["sigma"] == 15 and s15.train.steps == s25.train.steps == 3000
    assert s25.schedule.milestones == [2000] and s25.train.batch_size == 64
    assert b.data.train.patch.size == 50 and b.train.steps == 2000 and b.schedule.milestones == [1400]
    stage2 = build_config(load_recipe("durn-s-p-raindrop-stage2-cpu"))
    assert stage2.model.init_from == "runs/durn-s-p-raindrop-cpu" and stage2.train.batch_size == 4


def test_configs_may_start_from_a_recipe_or_its_cpu_variant(tmp_path: Path) -> None:
    for base, steps in (("dncnn-s-25", None), ("dncnn-s-25-cpu", 3000)):
        path = tmp_path / f"{base}.yaml"
        path.write_text(f"base: {base}\ntrain: {{batch_size: 8}}\n")
        cfg = build_config(path)  # the inherited cpu: section is not an unknown key
        assert cfg.train.batch_size == 8 and cfg.train.steps == steps and cfg.train.epochs == (50 if steps is None else None)


def test_a_recipe_without_a_cpu_section_has_no_variant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import restorekit.recipes as recipes

    (tmp_path / "plain.yaml").write_text("model: {name: dncnn-s}\ntrain: {steps: 5}\n")
    monkeypatch.setattr(recipes, "RECIPE_DIR", tmp_path)
    assert recipes.list_recipes() == ["plain"]
    with pytest.raises(RestoreKitError, match="'plain' has no CPU-sized variant"):
        recipes.load_recipe("plain-cpu")


@pytest.mark.parametrize("name", [n for n in list_recipes() if not n.endswith(CPU_SUFFIX)])
def test_recipe_runs_one_step(name: str, tmp_path: Path) -> None:
    raw = build_config(load_recipe(name))
    if raw.model.name not in list_models():
        pytest.skip(f"recipe {name}: model {raw.model.name!r} is not registered yet")
    family = raw.model.name.split("-")[0]
    ipt = family == "ipt"
    size = 200 if ipt else 32
    overrides = [
        "train.epochs=null", "train.steps=1", "train.batch_size=2", "train.num_workers=0",
        "train.progress=false", "train.tensorboard=false", "train.plot=false", "model.init_from=null",
        f"train.locally_training_num={min(2, raw.train.locally_training_num)}",
    ]
    if raw.train.mixup is not None:
        overrides.append("train.mixup.start_epoch=0")  # exercised from the first step
    t = raw.data.train
    overrides.append(f"data.train.root={_make_set(tmp_path / 'train', t.kind, t.input, t.target, size)}")
    if not ipt:
        overrides.append("data.train.patch.size=16")
    if raw.data.val is not None:
        v = raw.data.val
        overrides += [f"data.val.root={_make_set(tmp_path / 'val', v.kind, v.input, v.target, size)}",
                      "data.val.max_images=1", f"data.val.center_crop={v.center_crop if ipt else 16}"]
    for key, value in SMALL_ARGS.get(family, {}).items():
        overrides.append(f"model.args.{key}={value}")
    cfg = resolve_paths(build_config(load_recipe(name), overrides))
    trainer = Trainer(cfg, tmp_path / "run", DistInfo())
    batch = next(iter(trainer_loader(trainer)))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    losses, skipped = trainer.train_step(batch, 0)
    assert skipped == 0 and len(losses) == cfg.train.locally_training_num and all(np.isfinite(losses))
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    if cfg.data.val is not None:
        psnr, ssim = trainer.validate()
        assert np.isfinite(psnr) and -1 <= ssim <= 1


def trainer_loader(trainer: Trainer):
    from restorekit.data import StepSampler, make_loader

    sampler = StepSampler(len(trainer.train_set), trainer.cfg.train.batch_size, total=1)
    return make_loader(trainer.train_set, sampler)
