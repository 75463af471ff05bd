"""benchmarks/gpu_check.py: every part runs at tiny settings on the CPU (`--cpu-smoke`), and without CUDA the script
says so in one line and exits 0."""

import importlib.util
import json
import pathlib

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


@pytest.mark.slow
def test_cpu_smoke_runs_every_part(tmp_path):
    assert gpu_check.main(["--cpu-smoke", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "gpu_check_cpu_smoke.json").read_text())
    assert set(result["parts"]) == set(gpu_check.PARTS)
    failed = {k: v["error"] for k, v in result["parts"].items() if "error" in v}
    assert not failed, failed
    rows = result["parts"]["visualize"]["rows"]
    assert {"fp32, batch 1", "bf16 autocast, batch 2", "channels_last, batch 2"} <= set(rows)
    assert all(r["ms_per_step"] > 0 for r in rows.values() if isinstance(r, dict))
    table = (tmp_path / "gpu_check_cpu_smoke.md").read_text()
    assert "## visualize" in table and "## torchrun_atlas" in table


def test_without_cuda_it_says_so_and_exits_0(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "no CUDA GPU" in out[0] and not list(tmp_path.iterdir())
