"""Official weights: the catalogue (checked against ../shared where present), `restorekit models`' weights
column, and `restorekit download` against an HTTP server on 127.0.0.1 only (a good file, a wrong checksum,
a connection cut mid-file, a stalled one, 404, nothing listening). No test talks to the internet: every
URL is redirected to the local server through $RESTOREKIT_DOWNLOAD_BASE."""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import sys
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_path

import restorekit as rk
from restorekit.checkpoints import checkpoint_metadata, load
from restorekit.cli import main
from restorekit.download import cache_home, converted_path, download
from restorekit.errors import RestoreKitError
from restorekit.io import write_image
from restorekit.models import create_model, list_models
from restorekit.pretrained import BUILTIN, load_weights, resolve_model
from restorekit.weights_catalog import RELEASES, Release, releases_for, short_page

# Releases whose file is in ../shared/weights, and where.
SHARED_FILES = {
    "dncnn-s15-mat": "dncnn-matconvnet/sigma=15.mat",
    "dncnn-s25-mat": "dncnn-matconvnet/sigma=25.mat",
    "dncnn-s50-mat": "dncnn-matconvnet/sigma=50.mat",
    "dncnn-b-mat": "dncnn-matconvnet/GD_Gray_Blind.mat",
    "cdncnn-b-mat": "dncnn-matconvnet/GD_Color_Blind.mat",
    "dncnn3-mat": "dncnn-matconvnet/DnCNN3.mat",
    "dncnn-s15-saoyan": "dncnn-saoyan/DnCNN-S-15/net.pth",
    "dncnn-s25-saoyan": "dncnn-saoyan/DnCNN-S-25/net.pth",
    "dncnn-s50-saoyan": "dncnn-saoyan/DnCNN-S-50/net.pth",
    "dncnn-b-saoyan": "dncnn-saoyan/DnCNN-B/net.pth",
    "dncnn-s25-kair": "dncnn-kair/dncnn_25.pth",
    "xdncnn-s25-2018": "xunit-2018/xdncnn_res_f64k3k9_s25.pkl",
    "xdncnn-s50-2018": "xunit-2018/xdncnn_res_f64k3k9_s50.pkl",
}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalServer:
    """Serves ``routes`` (path -> (mode, body)); mode "ok", "drop" (announces the whole length, sends half
    and closes) or "stall" (sends half, then waits); any other path is a 404. ``requests`` counts GETs."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[str, bytes]] = {}
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                outer.requests.append(self.path)
                mode, body = outer.routes.get(self.path, ("404", b""))
                if mode == "404":
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode == "ok":
                    self.wfile.write(body)
                    return
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                if mode == "stall":
                    time.sleep(1.5)
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = LocalServer()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def offline_home(tmp_path, monkeypatch, server):
    """Every test: a fresh cache folder, and every download URL rewritten to the local server."""
    monkeypatch.setenv("RESTOREKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RESTOREKIT_DOWNLOAD_BASE", server.base)
    return tmp_path / "home"


def _toy_checkpoint() -> bytes:
    """A small DnCNN in KAIR's layout (``model.{0,2,4}.{weight,bias}``), as torch.save writes it."""
    torch.manual_seed(0)
    net = create_model("dncnn", channels=1, depth=3, features=8, batch_norm=False, bias=True)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.1)
    state = {k.replace("body.", "model.", 1): v for k, v in net.state_dict().items()}
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


TOY = _toy_checkpoint()
TOY_PATH = "/example.invalid/weights/toy_dncnn.pth"


@pytest.fixture
def toy(monkeypatch, server) -> Release:
    """A catalogue entry for the toy file, whose official URL (an unresolvable host) the base redirects."""
    release = Release("toy-dncnn", ("dncnn",), "toy DnCNN", "-", "https://example.invalid/page", "toy_dncnn.pth",
                      _sha256(TOY), "https://example.invalid/weights/toy_dncnn.pth", len(TOY), "synthetic", "-")
    monkeypatch.setitem(RELEASES._entries, release.name, release)
    server.routes[TOY_PATH] = ("ok", TOY)
    return release


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_good_file_is_checked_converted_cached_and_restores(toy, server, offline_home, tmp_path):
    path = download("toy-dncnn", progress=False)
    assert path == offline_home / "weights" / "toy-dncnn.safetensors" == converted_path("toy-dncnn")
    assert server.requests == [TOY_PATH]
    original = offline_home / "originals" / toy.sha256 / "toy_dncnn.pth"
    assert original.read_bytes() == TOY
    assert _files(offline_home) == sorted([path, original])  # no temporary file left beside them
    model = load(path)
    assert model.info.name == "dncnn" and model.info.args["features"] == 8
    source = checkpoint_metadata(path)["source"]
    assert source["release"] == "toy-dncnn" and source["sha256"] == toy.sha256 and source["file"] == "toy_dncnn.pth"

    own = tmp_path / "toy_dncnn.pth"
    own.write_bytes(TOY)
    image = np.random.default_rng(0).random((21, 17)).astype(np.float32)
    out = rk.restore(image, weights="toy-dncnn")  # the name finds the cached conversion
    assert out.shape == image.shape and np.isfinite(out).all()
    assert np.array_equal(out, rk.restore(image, weights=own))
    assert not np.array_equal(out, image)

    assert download("toy-dncnn", progress=False) == path  # cached: no second request
    path.unlink()
    assert download("toy-dncnn", progress=False) == path  # converted again from the kept original
    assert server.requests == [TOY_PATH]
    download("toy-dncnn", progress=False, force=True)
    assert server.requests == [TOY_PATH, TOY_PATH]


def test_wrong_checksum_is_refused_and_leaves_nothing(toy, monkeypatch, offline_home):
    monkeypatch.setitem(RELEASES._entries, toy.name, replace(toy, sha256="0" * 64))
    with pytest.raises(RestoreKitError) as info:
        download("toy-dncnn", progress=False)
    msg = str(info.value)
    assert "sha256 mismatch" in msg and "expected 000000000000" in msg and f"got {toy.sha256[:12]}" in msg
    assert "deleted" in msg and "\n" not in msg
    assert _files(offline_home) == []


@pytest.mark.parametrize("mode", ["drop", "stall"])
def test_connection_cut_mid_file_leaves_no_partial_file(toy, server, offline_home, mode):
    server.routes[TOY_PATH] = (mode, TOY)
    with pytest.raises(RestoreKitError) as info:
        download("toy-dncnn", progress=False, timeout=0.5)
    msg = str(info.value)
    assert "was cut after" in msg and f"of {len(TOY):,} bytes" in msg and "no partial file was kept" in msg
    assert _files(offline_home) == []
    server.routes[TOY_PATH] = ("ok", TOY)  # and a second try succeeds
    assert download("toy-dncnn", progress=False).is_file()


def test_404_and_no_network_are_one_clear_line(toy, server, monkeypatch, offline_home, capsys):
    server.routes.clear()
    with pytest.raises(RestoreKitError) as info:
        download("toy-dncnn", progress=False)
    msg = str(info.value)
    assert "HTTP 404" in msg and "download toy_dncnn.pth from https://example.invalid/page" in msg
    assert "weights=FILE" in msg and "--weights" not in msg and "\n" not in msg

    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("RESTOREKIT_DOWNLOAD_BASE", f"http://127.0.0.1:{port}")
    code = main(["download", "toy-dncnn"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"cannot reach 127.0.0.1:{port}" in err and "pass it with --weights FILE" in err
    assert _files(offline_home) == []
    server.routes[TOY_PATH] = ("ok", TOY)  # base_url= wins over the environment
    assert download("toy-dncnn", progress=False, base_url=server.base + "/").is_file()


def test_cli_download_then_weights_name(toy, server, offline_home, tmp_path, capsys):
    code = main(["download", "toy-dncnn"])
    out = capsys.readouterr().out
    assert code == 0 and str(offline_home / "weights" / "toy-dncnn.safetensors") in out
    assert "--weights toy-dncnn" in out
    img = tmp_path / "noisy.png"
    write_image(img, np.random.default_rng(1).random((19, 23, 1)).astype(np.float32))
    code = main(["restore", str(img), "-o", str(tmp_path / "out.png"), "--weights", "toy-dncnn"])
    assert code == 0 and (tmp_path / "out.png").is_file()
    code = main(["download", "--list"])
    out = capsys.readouterr().out
    assert code == 0 and re.search(r"^toy-dncnn\s+dncnn\s.*\byes\b", out, re.M) and str(offline_home) in out

    code = main(["download", "toy-dncn"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "did you mean 'toy-dncnn'" in err
    assert len(server.requests) == 1


def test_nothing_downloads_implicitly(toy, server, capsys):
    with pytest.raises(RestoreKitError) as info:
        load_weights("toy-dncnn")
    assert "not downloaded yet" in str(info.value) and "--" not in str(info.value)
    assert "run `restorekit download toy-dncnn`" in info.value.for_cli()
    with pytest.raises(RestoreKitError) as info:
        resolve_model("dncnn-s-folded")
    assert "dncnn-s25-mat" in str(info.value) and "weights=" in str(info.value) and "--weights" not in str(info.value)
    assert "restorekit models dncnn-s-folded" in info.value.for_cli()
    with pytest.raises(RestoreKitError) as info:
        resolve_model("mprnet-derain")
    assert "model_deraining.pth" in str(info.value) and "github.com/swz30/MPRNet" in str(info.value)
    with pytest.raises(RestoreKitError) as info:
        load_weights("mprnet-derain-rain13k")
    assert "no stable direct download URL" in str(info.value) and "github.com/swz30/MPRNet" in str(info.value)
    with pytest.raises(RestoreKitError, match="no such weights file"):
        load_weights("no-such-file.safetensors")
    code = main(["download", "mprnet-derain-rain13k"])
    assert code == 2 and "download model_deraining.pth from https://github.com/swz30/MPRNet" in capsys.readouterr().err
    assert server.requests == []


def test_cache_folder_default_and_env(monkeypatch, tmp_path):
    assert cache_home(tmp_path / "x") == tmp_path / "x"
    assert cache_home() == tmp_path / "home"  # $RESTOREKIT_HOME (set by the autouse fixture)
    monkeypatch.delenv("RESTOREKIT_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform not in ("win32", "darwin"):
        assert cache_home() == tmp_path / "xdg" / "restorekit"
        monkeypatch.delenv("XDG_CACHE_HOME")
        monkeypatch.setenv("HOME", str(tmp_path / "user"))
        assert cache_home() == tmp_path / "user" / ".cache" / "restorekit"


def test_models_weights_column(capsys):
    code = main(["models"])
    out = capsys.readouterr().out
    assert code == 0
    rows = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith(("name ", "weights:"))}
    assert "built-in: default-gray" in rows["resunet-gray"] and "built-in" not in rows["dncnn-unshuffle-gray-wide"]
    assert "download: dncnn-s15-mat +3" in rows["dncnn-s-folded"]
    assert "official: model_deraining.pth (github.com/swz30/MPRNet)" in rows["mprnet-derain"]
    assert "built-in: default-color" in rows["resunet-color-opp"] and "built-in" not in rows["resunet-color"]

    code = main(["models", "--json"])
    data = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert data["dncnn-9"]["weights"] == {"summary": "-", "builtin": [], "official": []}
    assert data["resunet-gray"]["weights"]["builtin"] == ["default-gray"]
    s25 = {r["name"]: r for r in data["dncnn-s-folded"]["weights"]["official"]}["dncnn-s25-mat"]
    assert s25["sha256"] == "5a5404c9e3ef14e353760e14b885439408a654618e14f13b2e97b99b9835020b"
    assert s25["file"] == "sigma=25.mat" and s25["page"] == "https://github.com/cszn/DnCNN/tree/master/model"
    assert s25["convert"] == "restorekit convert sigma=25.mat dncnn-s25-mat.safetensors"
    assert s25["download"] == "restorekit download dncnn-s25-mat"
    derain = data["mprnet-derain"]["weights"]["official"][0]
    assert derain["url"] is None and derain["download"] is None and derain["sha256"] is None

    code = main(["models", "--task", "derain"])
    out = capsys.readouterr().out
    assert code == 0 and "durn-s " in out and "dncnn-s " not in out


def test_models_name_prints_one_variant(capsys):
    code = main(["models", "mprnet-derain"])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("mprnet-derain: ")
    assert "restorekit convert model_deraining.pth mprnet-derain-rain13k.safetensors" in out
    assert "https://github.com/swz30/MPRNet/tree/main/Deraining" in out and "Zamir et al." in out
    code = main(["models", "dncnn-s-folded"])
    out = capsys.readouterr().out
    assert "5a5404c9e3ef14e353760e14b885439408a654618e14f13b2e97b99b9835020b" in out
    assert "restorekit download dncnn-s25-mat" in out and "restorekit convert dncnn_25.pth dncnn-s25-kair.safetensors" in out
    code = main(["models", "resunet-gray"])
    assert "built-in: default-gray" in capsys.readouterr().out
    code = main(["models", "dncnn-s25-mat", "--json"])
    assert json.loads(capsys.readouterr().out)["official"][0]["source"].startswith("cszn/DnCNN @ e93b278")
    code = main(["models", "mprnet-deran"])
    err = capsys.readouterr().err
    assert code == 2 and "did you mean 'mprnet-derain'" in err and err.count("\n") == 1


def test_catalogue_is_consistent():
    models = set(list_models())
    for name, r in RELEASES.items():
        assert name == r.name and name not in models and name not in BUILTIN
        assert r.variants and set(r.variants) <= models, name
        assert r.page.startswith("https://") and r.file and r.paper and r.license, name
        assert r.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", r.sha256), name
        if r.url is not None:  # stable: a GitHub path pinned to a full commit
            assert re.fullmatch(r"https://raw\.githubusercontent\.com/[^/]+/[^/]+/[0-9a-f]{40}/.+", r.url), name
            assert r.url.endswith("/" + r.file_name) and r.sha256 and r.size, name
        assert r.convert_command().startswith("restorekit convert ") and r.convert_command().endswith(f" {name}.safetensors")
    for variant in models:
        assert all(variant in r.variants for r in releases_for(variant))
    assert short_page("https://github.com/swz30/MPRNet/tree/main/Deraining") == "github.com/swz30/MPRNet"


def test_catalogue_checksums_match_the_shared_files():
    folder = shared_path("weights")
    for name, rel in SHARED_FILES.items():
        release, path = RELEASES.get(name), folder / rel
        data = path.read_bytes()
        assert release.file_name == path.name and release.size == len(data), name
        assert release.sha256 == _sha256(data), f"{name}: sha256 of {path} differs from the catalogue"
    catalogued = {r.sha256 for r in RELEASES.values()}
    for path in sorted(folder.rglob("*")):
        if path.suffix in (".mat", ".pth", ".pkl"):
            assert _sha256(path.read_bytes()) in catalogued, f"{path} is not in the catalogue"


def test_every_shared_release_downloads_through_a_mirror(server, offline_home):
    """The real catalogue entries end to end: their files served at their official paths under the
    mirror base, checked, converted, and loaded as one of the variants the catalogue names."""
    folder = shared_path("weights")
    for name, rel in SHARED_FILES.items():
        release = RELEASES.get(name)
        server.routes["/" + release.url.split("://", 1)[1]] = ("ok", (folder / rel).read_bytes())
    for name in SHARED_FILES:
        release = RELEASES.get(name)
        meta = checkpoint_metadata(download(name, progress=False))
        assert meta["arch"] in release.variants, f"{name} converts to {meta['arch']}, not {release.variants}"
    assert len(server.requests) == len(SHARED_FILES)
