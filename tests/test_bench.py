"""Benchmark harness: counted FLOPs, measured peaks, rows, table and JSON (tiny sizes only)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from restorekit.eval.speed import (
    count_flops,
    format_table,
    matmul_peak,
    run_bench,
    write_json,
)
from restorekit.errors import RestoreKitError
from restorekit.inference import InferenceOptions
from restorekit.models import create_model


def _dncnn_flops(depth: int, channels: int, features: int, h: int, w: int) -> int:
    macs = channels * features * 9 + (depth - 2) * features * features * 9 + features * channels * 9
    return 2 * macs * h * w


def test_flops_are_counted_from_the_model() -> None:
    model = create_model("dncnn-s-folded")
    x = torch.rand(1, 1, 20, 24)
    assert count_flops(model, x, InferenceOptions(device="cpu")) == _dncnn_flops(17, 1, 64, 20, 24)
    # Padding to the size multiple is part of the work: MPRNet runs on 24×24 for a 20×17 image.
    mpr = create_model("mprnet-derain")
    assert count_flops(mpr, torch.rand(1, 3, 20, 17), InferenceOptions(device="cpu")) == \
        count_flops(mpr, torch.rand(1, 3, 24, 24), InferenceOptions(device="cpu"))


def test_matmul_peak_is_positive() -> None:
    assert matmul_peak("fp32", n=128, repeats=2) > 0
    assert matmul_peak("bf16", n=128, repeats=2) > 0


def test_run_bench_rows_table_and_json(tmp_path: Path) -> None:
    rows = run_bench(["dncnn-s-folded"], size=(24, 20), repeats=1, warmup=0, peak_size=128)
    # bf16 on CPU always runs channels_last: three distinct configurations, not four.
    assert [(r["precision"], r["channels_last"]) for r in rows] == [("fp32", False), ("fp32", True), ("bf16", True)]
    for r in rows:
        assert r["gflop"] == pytest.approx(_dncnn_flops(17, 1, 64, 24, 20) / 1e9)
        assert r["ms"] > 0 and r["mpix_per_s"] == pytest.approx(24 * 20 / (r["ms"] / 1e3) / 1e6)
        assert r["gflops"] == pytest.approx(r["gflop"] / (r["ms"] / 1e3))
        assert r["fraction_of_peak"] == pytest.approx(r["gflops"] / r["peak_gflops"])
        assert r["peak_mem_mb"] is None or r["peak_mem_mb"] >= 0
    table = format_table(rows)
    assert "dncnn-s-folded" in table and "NHWC" in table and len(table.splitlines()) == 5
    data = json.loads(write_json(rows, tmp_path / "bench.json").read_text())
    assert data["rows"][0]["model"] == "dncnn-s-folded" and "torch" in data["machine"]


def test_run_bench_errors() -> None:
    with pytest.raises(RestoreKitError, match="unknown model"):
        run_bench(["no-such-model"])
    with pytest.raises(RestoreKitError, match="fp16 needs a CUDA device"):
        run_bench(["dncnn-s-folded"], precisions=("fp16",), device="cpu")
    with pytest.raises(RestoreKitError, match="valid: fp32, bf16, fp16"):
        run_bench(["dncnn-s-folded"], precisions=("fp8",))
