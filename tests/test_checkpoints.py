import json

import pytest
import torch

import restorekit as rk
from restorekit.checkpoints import checkpoint_metadata, read_checkpoint, save_checkpoint, training_stages
from restorekit.io.files import atomic_write
from restorekit.errors import RestoreKitError


def test_round_trip_rebuilds_architecture(tmp_path):
    model = rk.create_model("dncnn-s", channels=3)
    path = save_checkpoint(tmp_path / "m.safetensors", model, metadata={"training": {"step": 7}})
    loaded = rk.load(path)
    assert loaded.info.name == "dncnn-s" and loaded.info.channels == 3
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    meta = checkpoint_metadata(path)
    assert meta["arch"] == "dncnn-s" and meta["args"] == {"channels": 3} and meta["training"]["step"] == 7


def test_tied_weights_stored_once(tmp_path):
    model = rk.create_model("dncnn-s-folded")
    state = dict(model.state_dict())
    state["alias.weight"] = state["body.0.weight"]
    path = save_checkpoint(tmp_path / "t.safetensors", state, arch="dncnn-s-folded")
    tensors, meta = read_checkpoint(path)
    assert meta["aliases"] == {"alias.weight": "body.0.weight"}
    assert torch.equal(tensors["alias.weight"], tensors["body.0.weight"])


def test_strict_loading_names_keys(tmp_path):
    state = rk.create_model("dncnn-s-folded").state_dict()
    state.pop("body.0.bias")
    state["extra.weight"] = torch.zeros(1)
    path = save_checkpoint(tmp_path / "bad.safetensors", state, arch="dncnn-s-folded")
    with pytest.raises(RestoreKitError, match=r"missing 1: body\.0\.bias.*unexpected 1: extra\.weight"):
        rk.load(path)


def test_wrong_architecture_is_named(tmp_path):
    path = save_checkpoint(tmp_path / "s.safetensors", rk.create_model("dncnn-s-folded"))
    from restorekit.checkpoints import load_state_dict_strict

    tensors, _ = read_checkpoint(path)
    with pytest.raises(RestoreKitError, match="does not fit dncnn-b-folded"):
        load_state_dict_strict(rk.create_model("dncnn-b-folded"), tensors)


def test_corrupted_file_is_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "c.safetensors", rk.create_model("dncnn-s-folded"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RestoreKitError, match="not a readable safetensors"):
        rk.load(path)
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(RestoreKitError):
        rk.load(tmp_path / "junk.safetensors")


def test_failed_write_leaves_previous_file(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")

    def boom(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(RestoreKitError, match="cannot write: disk full"):
        atomic_write(target, boom)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_refuses_overwrite_when_asked(tmp_path):
    path = save_checkpoint(tmp_path / "a.safetensors", rk.create_model("dncnn-s-folded"))
    with pytest.raises(RestoreKitError, match="overwrite=True"):
        save_checkpoint(path, rk.create_model("dncnn-s-folded"), overwrite=False)


def test_metadata_is_json(tmp_path):
    path = save_checkpoint(tmp_path / "a.safetensors", rk.create_model("dncnn-s-folded"))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        assert json.loads(fh.metadata()["restorekit"])["format_version"] == "1"


class _Evil:
    def __reduce__(self):
        return (print, ("executed",))


def test_pickled_code_is_refused(tmp_path):
    from restorekit.convert import convert_file

    path = tmp_path / "evil.pth"
    torch.save({"model.0.weight": torch.zeros(1), "payload": _Evil()}, path)
    with pytest.raises(RestoreKitError, match="execute code"):
        convert_file(path)


def test_absurd_architecture_arguments_are_refused_before_allocating(tmp_path):
    """A file naming dncnn-s with channels=10**7 beside one tiny tensor would need ~23 GB if built;
    under a 3 GiB address-space limit the load must still end in one clear error."""
    import subprocess
    import sys
    import textwrap

    from restorekit.checkpoints import save_checkpoint

    path = tmp_path / "absurd.safetensors"
    save_checkpoint(path, {"body.0.weight": torch.zeros(1)}, arch="dncnn-s", args={"channels": 10_000_000})
    code = textwrap.dedent(f"""
        import resource
        import torch
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        from restorekit.checkpoints import load
        from restorekit.errors import RestoreKitError
        try:
            load({str(path)!r})
        except RestoreKitError as exc:
            print("refused:", exc)
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "refused:" in run.stdout and "does not fit dncnn-s" in run.stdout and "shape mismatch" in run.stdout


def test_training_stages_count_every_run_a_checkpoint_continued_from(tmp_path) -> None:
    state = {"w": torch.zeros(2)}
    first = save_checkpoint(tmp_path / "a.safetensors", state, arch="dncnn-9", metadata={
        "step": 100, "wall_time": 360.0, "config": {"train": {"batch_size": 16}, "optim": {"lr": 5e-4}}})
    second = {"step": 40, "wall_time": 720.0, "world_size": 2,
              "config": {"train": {"batch_size": 8}, "optim": {"lr": 1e-4}, "model": {"init_from": str(first)}}}
    assert training_stages(second) == [{"steps": 100, "patches": 1600, "hours": 0.1, "lr": 5e-4},
                                       {"steps": 40, "patches": 640, "hours": 0.2, "lr": 1e-4}]
    first.unlink()
    with pytest.raises(RestoreKitError, match="started from is missing"):
        training_stages(second)
