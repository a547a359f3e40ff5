"""The command line: outputs written and read back, and every error path a one-line message with a
non-zero exit (never a traceback, never a half-written or overwritten file)."""

import json
import shlex
import subprocess
import sys

import numpy as np
import pytest
import torch

import restorekit as rk
from restorekit.checkpoints import save_checkpoint
from restorekit.cli import main
from restorekit.errors import RestoreKitError
from restorekit.io import read_image, write_image


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    model = rk.create_model("dncnn-s-folded")
    with torch.no_grad():  # a near-identity denoiser: small noise estimate
        for p in model.parameters():
            p.mul_(0.01)
    return save_checkpoint(tmp_path / "w.safetensors", model)


@pytest.fixture
def color_weights(tmp_path):
    return save_checkpoint(tmp_path / "c.safetensors", rk.create_model("dncnn-s-folded", channels=3))


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "imgs"
    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(folder / f"im{i}.png", rng.random((23 + i, 31, 1)).astype(np.float32))
    return folder


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for cmd in ("restore", "eval", "convert", "models", "train", "bench", "export"):
        assert cmd in text
    with pytest.raises(SystemExit):
        main(["restore", "--help"])
    assert "examples:" in capsys.readouterr().out


def test_models_table_and_json(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0 and "dncnn-s " in out and "556,032" in out
    code, out, _ = run(capsys, "models", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["dncnn-b-folded"]["params"] == 665_921


def test_restore_folder_same_names(capsys, tmp_path, images, weights):
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "restore", str(images), "-o", str(out), "--weights", str(weights))
    assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert names == ["im0.png", "im1.png", "im2.png"]
    assert read_image(out / "im1.png").pixels.shape == (24, 31, 1)
    assert "restored 3" in stdout


def test_restore_refuses_existing_output(capsys, tmp_path, images, weights):
    out = tmp_path / "out"
    out.mkdir()
    (out / "im0.png").write_bytes(b"precious")
    code, _, err = run(capsys, "restore", str(images), "-o", str(out), "--weights", str(weights))
    assert code != 0 and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert (out / "im0.png").read_bytes() == b"precious"
    assert not (out / "im1.png").exists()  # refused before any work
    code, stdout, _ = run(capsys, "restore", str(images), "-o", str(out), "--weights", str(weights), "--skip-existing")
    assert code == 0 and (out / "im1.png").exists() and (out / "im0.png").read_bytes() == b"precious"
    assert "skipped 1" in stdout


def test_restore_missing_input(capsys, tmp_path, weights):
    code, _, err = run(capsys, "restore", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o"), "--weights", str(weights))
    assert code != 0 and "nope.png" in err and "Traceback" not in err


def test_restore_bad_image_in_batch_goes_on(capsys, tmp_path, images, weights):
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "restore", str(images), "-o", str(out), "--weights", str(weights))
    assert code == 1
    assert "broken.png" in stdout and "failed 1" in stdout and "restored 3" in stdout
    assert not (out / "broken.png").exists()


def test_colour_image_through_gray_model_stays_colour(capsys, tmp_path, weights):
    # restored on its luminance (--color y, the default); tests/test_gray_on_color.py checks the numbers
    write_image(tmp_path / "rgb.png", np.random.default_rng(0).random((16, 16, 3)).astype(np.float32))
    code, _, err = run(capsys, "restore", str(tmp_path / "rgb.png"), "-o", str(tmp_path / "o.png"), "--weights", str(weights))
    assert code == 0, err
    assert read_image(tmp_path / "o.png").channels == 3


def test_gray_image_through_colour_model_stays_gray(capsys, tmp_path, images, color_weights):
    out = tmp_path / "o.png"
    code, _, err = run(capsys, "restore", str(images / "im0.png"), "-o", str(out), "--weights", str(color_weights))
    assert code == 0, err
    assert read_image(out).channels == 1


def test_unknown_model_and_bad_weights(capsys, tmp_path, images):
    code, _, err = run(capsys, "restore", str(images), "-o", str(tmp_path / "o"), "--model", "dncnn-z")
    assert code != 0 and "did you mean" in err
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"junk")
    code, _, err = run(capsys, "restore", str(images), "-o", str(tmp_path / "o"), "--weights", str(bad))
    assert code != 0 and "bad.safetensors" in err
    assert not (tmp_path / "o").exists()


def test_eval_writes_json_and_csv(capsys, tmp_path, images, weights):
    out = tmp_path / "r.json"
    code, stdout, err = run(capsys, "eval", "--weights", str(weights), "--data", str(images), "--sigma", "25", "--out", str(out))
    assert code == 0, err
    data = json.loads(out.read_text())
    assert set(data) == {"mean", "images", "settings"}
    assert [r["name"] for r in data["images"]] == ["im0", "im1", "im2"]
    assert data["settings"]["sigma"] == 25 and data["mean"]["psnr"] > 15
    assert abs(data["mean"]["psnr"] - np.mean([r["psnr"] for r in data["images"]])) < 1e-9
    code, _, _ = run(capsys, "eval", "--weights", str(weights), "--data", str(images), "--sigma", "25", "--out", str(out))
    assert code != 0  # refuses to overwrite
    csv_path = tmp_path / "r.csv"
    assert run(capsys, "eval", "--weights", str(weights), "--data", str(images), "--sigma", "25", "--out", str(csv_path))[0] == 0
    assert csv_path.read_text().splitlines()[0].startswith("name,psnr,ssim")


def test_eval_is_reproducible(capsys, tmp_path, images, weights):
    results = []
    for name in ("a.json", "b.json"):
        run(capsys, "eval", "--weights", str(weights), "--data", str(images), "--sigma", "15", "--out", str(tmp_path / name))
        results.append(json.loads((tmp_path / name).read_text())["mean"]["psnr"])
    assert results[0] == results[1]


def test_eval_errors(capsys, tmp_path, images, weights):
    code, _, err = run(capsys, "eval", "--weights", str(weights), "--data", str(tmp_path / "none"), "--sigma", "25")
    assert code != 0 and "no such folder" in err
    code, _, err = run(capsys, "eval", "--weights", str(weights), "--data", str(images))
    assert code != 0 and "--sigma" in err
    code, _, err = run(capsys, "eval", "--weights", str(weights), "--data", str(images), "--sigma", "-3")
    assert code != 0 and "outside" in err


def test_convert_and_info(capsys, tmp_path):
    model = rk.create_model("dncnn-s-folded")
    torch.save({"model." + k[len("body."):]: v for k, v in model.state_dict().items()}, tmp_path / "k.pth")
    dst = tmp_path / "k.safetensors"
    code, out, err = run(capsys, "convert", str(tmp_path / "k.pth"), str(dst))
    assert code == 0, err
    assert "dncnn-s-folded" in out
    code, out, _ = run(capsys, "info", str(dst))
    assert json.loads(out)["arch"] == "dncnn-s-folded"
    code, _, err = run(capsys, "convert", str(tmp_path / "k.pth"), str(dst))
    assert code != 0 and "--overwrite" in err


def test_console_script_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "restorekit", "models", "--task", "derain"], capture_output=True, text=True)
    assert proc.returncode == 0 and "durn-s" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "restorekit", "restore", str(tmp_path / "x.png"), "-o", str(tmp_path / "y")],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_python_api_types(weights):
    from PIL import Image

    arr = np.random.default_rng(0).random((20, 18)).astype(np.float32)
    out = rk.restore(arr, weights=weights)
    assert isinstance(out, np.ndarray) and out.shape == arr.shape and out.dtype == arr.dtype
    pil = Image.fromarray((arr * 255).astype(np.uint8))
    out = rk.restore(pil, weights=weights)
    assert isinstance(out, Image.Image) and out.size == pil.size and out.mode == "L"
    t = torch.from_numpy(arr)[None, None]
    out = rk.restore(t, weights=weights)
    assert isinstance(out, torch.Tensor) and out.shape == t.shape


def test_python_api_metrics_take_what_restore_returns(weights):
    clean = (np.random.default_rng(1).random((24, 20)) * 255).astype(np.uint8)
    out = rk.restore(clean, weights=weights)
    assert out.dtype == np.uint8
    value = rk.psnr(out, clean)  # the range comes from the dtype, as in scikit-image
    from skimage.metrics import peak_signal_noise_ratio

    assert type(value) is float and value == pytest.approx(peak_signal_noise_ratio(clean, out), abs=1e-9)
    assert type(rk.ssim(out, clean)) is float


def test_recipes_listed(capsys):
    code, out, _ = run(capsys, "recipes")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert {"dncnn-s-25", "dncnn-b", "default-gray", "mprnet-derain", "durn-p-gaussian"} <= set(names)


def test_restore_says_sigma_is_ignored(capsys, tmp_path, images, weights):
    outs = []
    for sigma in ("25", "50"):
        out = tmp_path / f"out{sigma}"
        with pytest.warns(UserWarning, match="--sigma .* is ignored"):
            code, _, _ = run(capsys, "restore", str(images / "im0.png"), "-o", str(out), "--weights", str(weights),
                             "--sigma", sigma)
        assert code == 0
        outs.append((out / "im0.png").read_bytes())
    assert outs[0] == outs[1]


def test_unknown_task_and_misspelt_command_name_the_valid_ones(capsys):
    code, out, err = run(capsys, "models", "--task", "deblock")
    assert code == 2 and not out and "no model for task 'deblock'" in err and "jpeg" in err and len(err.splitlines()) == 1
    code, _, err = run(capsys, "models", "--task", "denoize")
    assert code == 2 and "did you mean 'denoise'?" in err
    code, _, err = run(capsys, "restor", "x.png")
    assert code == 2 and "did you mean 'restore'?" in err and len(err.splitlines()) == 1


def test_models_by_task_include_multi_task_models(capsys):
    code, out, _ = run(capsys, "models", "--task", "jpeg")
    assert code == 0 and [line.split()[0] for line in out.splitlines()[1:] if line.strip()][0] == "dncnn3-folded"
    code, out, _ = run(capsys, "models", "--task", "sr")
    names = {line.split()[0] for line in out.splitlines()[1:] if line.strip()}
    assert {"dncnn3-folded", "ipt-sr-x2", "ipt-pretrain"} <= names and "dncnn-b" not in names


def test_models_json_into_a_closed_pipe_ends_quietly():
    proc = subprocess.run(f"{shlex.quote(sys.executable)} -m restorekit models --json | head -n 2", shell=True,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.startswith("[") and proc.stderr == ""


def test_library_errors_name_no_flags_and_the_cli_adds_them(capsys, tmp_path, images, weights):
    from restorekit.io.files import atomic_write

    target = tmp_path / "taken.png"
    target.write_bytes(b"x")
    with pytest.raises(RestoreKitError) as info:
        atomic_write(target, lambda tmp: tmp.write_bytes(b"y"), overwrite=False)
    assert "overwrite=True" in str(info.value) and "--" not in str(info.value)
    with pytest.raises(RestoreKitError) as info:
        rk.restore(np.zeros((8, 8, 3), np.float32), "mprnet-derain")
    assert "--weights" not in str(info.value) and "weights=" in str(info.value)
    code, _, err = run(capsys, "restore", str(images / "im0.png"), "-o", str(target), "--weights", str(weights))
    assert code != 0 and "pass --overwrite" in err and "overwrite=True" not in err


def test_lossy_inputs_are_written_losslessly_to_a_folder_and_named_jpegs_state_their_quality(capsys, tmp_path, weights):
    from PIL import Image

    from restorekit.inference.batch import output_notes, plan_outputs

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((20, 24)) * 255).astype(np.uint8)).save(folder / "photo.JPG", quality=80)
    write_image(folder / "deep.png", rng.random((20, 24, 1)).astype(np.float32), bit_depth=16)
    out = tmp_path / "out"
    code, stdout, err = run(capsys, "restore", str(folder), "-o", str(out), "--weights", str(weights))
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["deep.png", "photo.png"]
    assert (out / "photo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert read_image(out / "photo.png").bit_depth == 8 and read_image(out / "deep.png").bit_depth == 16
    said = [line for line in stdout.splitlines() if "→" in line]
    assert len(said) == 1 and said[0].startswith("photo.JPG → photo.png") and "lossless" in said[0]
    assert "re-compressed" in said[0] and "quality" not in stdout

    # A .jpg output named explicitly is honoured, and the quality used is stated.
    named = tmp_path / "named.jpg"
    code, stdout, err = run(capsys, "restore", str(folder / "photo.JPG"), "-o", str(named), "--weights", str(weights))
    assert code == 0, err
    assert named.read_bytes()[:2] == b"\xff\xd8" and "JPEG at quality 95" in stdout

    # a.jpg and a.png would both become a.png: refused before anything is written.
    clash = tmp_path / "clash"
    clash.mkdir()
    Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(clash / "a.jpg")
    Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(clash / "a.png")
    code, _, err = run(capsys, "restore", str(clash), "-o", str(tmp_path / "clash-out"), "--weights", str(weights))
    assert code == 2 and "a.jpg" in err and "a.png" in err and "would both be written to" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "clash-out").exists()

    # WebP (lossy or not, it cannot be written) and .jpeg go the same way; the note names both kinds.
    (clash / "b.webp").write_bytes(b"planned, not read")
    (clash / "c.jpeg").write_bytes(b"planned, not read")
    jobs = {j.src.name: j.dst.name for j in plan_outputs([str(clash / "b.webp"), str(clash / "c.jpeg")], tmp_path / "o")}
    assert jobs == {"b.webp": "b.png", "c.jpeg": "c.png"}
    notes = output_notes(plan_outputs([str(clash / "b.webp"), str(clash / "c.jpeg")], tmp_path / "o"))
    assert len(notes) == 1 and "1 more" in notes[0] and "JPEG and WebP inputs are not re-compressed" in notes[0]

    with pytest.raises(SystemExit):
        main(["restore", "--help"])
    assert "quality 95" in capsys.readouterr().out
