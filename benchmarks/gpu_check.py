"""Every GPU figure of invviz in one command, for a machine with one CUDA GPU (meant to finish in under 8 minutes).

    python benchmarks/gpu_check.py                 # on a CUDA machine: JSON + Markdown under benchmarks/results/
    python benchmarks/gpu_check.py --out DIR
    python benchmarks/gpu_check.py --cpu-smoke     # the same checks at tiny settings on the CPU (the test suite runs it)

What it measures (each part is timed, and a part that fails is recorded with its error rather than stopping the rest):

1. `visualize` throughput (units per second, the default recipe) on torchvision resnet50 `layer3` at 224 px for
   batches 1, 16 and 64, in fp32, under bf16 autocast, and with the model in channels_last;
2. the atlas of one whole layer (EfficientNet-Lite0 `blocks.4`, 112 units, the atlas's defaults);
3. feature-alignment training steps per second with AMP (bf16 autocast) on Lite0 at its latent, batch 16;
4. the concept pass (`invviz.concepts`, NMF, k = 16) on Lite0 over crops of the bundled photos;
5. a 1-GPU `torchrun` atlas (NCCL);
6. every tutorial at its full settings (`tutorials/NN_*.py` run as scripts without `INVVIZ_SMALL`).

Without CUDA (and without `--cpu-smoke`) it says so in one line and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import traceback

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def visualize_throughput(device, smoke: bool) -> dict:
    import torchvision

    import invviz
    from invviz.models import Preprocessing

    torch.manual_seed(0)
    net = torchvision.models.resnet50().eval().to(device)
    prep = Preprocessing(source="ImageNet mean/std (resnet50, random weights: no download here)")
    size, steps = (32, 3) if smoke else (224, 64)
    batches = (1, 2) if smoke else (1, 16, 64)
    rows = {}
    for mode in ("fp32", "bf16 autocast", "channels_last"):
        model = net.to(memory_format=torch.channels_last) if mode == "channels_last" else net
        probe = invviz.Probe(model, preprocessing=prep)
        for b in batches:
            auto = (torch.autocast(device.type, dtype=torch.bfloat16) if mode == "bf16 autocast"
                    else contextlib.nullcontext())
            with auto:
                invviz.visualize(probe, "layer3", list(range(b)), steps=2, size=size, progress=False)  # warm-up
                _sync(device)
                t = time.perf_counter()
                invviz.visualize(probe, "layer3", list(range(b)), steps=steps, size=size, progress=False)
                _sync(device)
            secs = time.perf_counter() - t
            rows[f"{mode}, batch {b}"] = {"ms_per_step": 1e3 * secs / steps,
                                          "units_per_second_at_384_steps": b / (secs / steps * 384)}
        net = net.to(memory_format=torch.contiguous_format)
    if device.type == "cuda":
        rows["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2 ** 30
    return {"model": "torchvision resnet50 (random weights)", "layer": "layer3", "size": size, "steps_timed": steps,
            "rows": rows}


def atlas_layer(device, smoke: bool) -> dict:
    import invviz

    model = invviz.load_model("tf_efficientnet_lite0").to(device)
    with tempfile.TemporaryDirectory() as out:
        kw = {"units": range(4), "steps": 3, "size": 32, "batch": 4, "data": None} if smoke else {}
        t = time.perf_counter()
        site = invviz.atlas(model, "blocks.4", out, progress=False, **kw)
        _sync(device)
        secs = time.perf_counter() - t
    return {"layer": "blocks.4", "units": site.rendered, "seconds": secs, "units_per_second": site.rendered / secs}


def alignment_steps(device, smoke: bool) -> dict:
    import invviz
    from invviz.align import FeatureAligned, train_aligned
    from invviz.data import PhotoCrops
    from invviz.training import TrainSchedule

    model = invviz.load_model("tf_efficientnet_lite0").to(device)
    size, batch, steps = (32, 2, 2) if smoke else (224, 16, 20)
    wrapper = FeatureAligned(model, size=size)
    data = torch.utils.data.DataLoader(PhotoCrops(size, length=batch * (steps + 1)), batch_size=batch, shuffle=True,
                                       generator=torch.Generator().manual_seed(0))
    train_aligned(wrapper, data, schedule=TrainSchedule(max_steps=1),
                  progress=False, amp=device.type == "cuda")  # warm-up, line search
    _sync(device)
    t = time.perf_counter()
    train_aligned(wrapper, data, schedule=TrainSchedule(max_steps=steps), progress=False, amp=device.type == "cuda")
    _sync(device)
    secs = time.perf_counter() - t
    return {"latent": wrapper.layer, "size": size, "batch": batch, "steps": steps, "steps_per_second": steps / secs,
            "amp": device.type == "cuda"}


def concept_pass(device, smoke: bool) -> dict:
    import invviz
    from invviz.data import PhotoCrops

    model = invviz.load_model("tf_efficientnet_lite0").to(device)
    n, size = (8, 64) if smoke else (1024, 224)
    c = invviz.concepts(model, "blocks.4.2.bn2", PhotoCrops(size, length=n), 4 if smoke else 16, size=size,
                        top_n=2, crop=32, batch=4 if smoke else 64)
    feats = invviz.models.features(model, "blocks.4.2.bn2", torch.rand(1, 3, size, size, device=device))
    positions = feats["blocks.4.2.bn2"].shape[2] * feats["blocks.4.2.bn2"].shape[3]
    return {"images": n, "size": size, "seconds": c.seconds,
            "activations_per_second": n * positions / c.seconds["activations"], "r2": c.r2}


def torchrun_atlas(device, smoke: bool) -> dict:
    with tempfile.TemporaryDirectory() as out:
        args = ["tf_efficientnet_lite0", "--layers", "blocks.4", "--units", "0-15", "--no-progress", "--out", out]
        if smoke:
            args += ["--steps", "2", "--size", "32", "--batch", "4", "--units", "0-3", "--data", "none"]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port", "29571", "-m",
               "invviz", "atlas", *args]
        t = time.perf_counter()
        out_ = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
        if out_.returncode:
            raise RuntimeError(out_.stderr[-1500:])
        return {"backend": "nccl" if device.type == "cuda" else "gloo", "seconds": time.perf_counter() - t,
                "output": out_.stdout.strip().splitlines()[-1]}


def tutorials(device, smoke: bool) -> dict:
    rows = {}
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("INVVIZ_SMALL", None)
    sources = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
    if smoke:  # the suite executes every tutorial at small settings already (tests/test_notebooks.py)
        for source in sources:
            compile(source.read_text(), str(source), "exec")
            rows[source.name] = {"ok": True, "seconds": 0.0, "compiled only": True}
        return {"settings": "compiled only (--cpu-smoke)", "rows": rows}
    for source in sources:
        t = time.perf_counter()
        out = subprocess.run([sys.executable, source.name], cwd=source.parent, env=env, capture_output=True,
                             text=True, timeout=900)
        rows[source.name] = {"ok": out.returncode == 0, "seconds": time.perf_counter() - t,
                             **({} if out.returncode == 0 else {"error": out.stderr.strip().splitlines()[-1:]})}
    return {"settings": "full", "rows": rows}


PARTS = {"visualize": visualize_throughput, "atlas": atlas_layer, "alignment": alignment_steps,
         "concepts": concept_pass, "torchrun_atlas": torchrun_atlas, "tutorials": tutorials}


def markdown(result: dict) -> str:
    lines = [f"# gpu_check: {result['device']}", "", f"`{result['command']}` — {result['seconds']:.0f} s in all", ""]
    for name, part in result["parts"].items():
        lines.append(f"## {name} ({part.get('part_seconds', 0):.1f} s)")
        if "error" in part and "rows" not in part:
            lines.append(f"failed: `{part['error']}`")
        elif isinstance(part.get("rows"), dict):
            lines += ["", "| | " + " | ".join(sorted({k for r in part["rows"].values() if isinstance(r, dict)
                                                      for k in r})) + " |"]
            keys = sorted({k for r in part["rows"].values() if isinstance(r, dict) for k in r})
            lines.append("| --- " * (len(keys) + 1) + "|")
            for row_name, row in part["rows"].items():
                if isinstance(row, dict):
                    lines.append(f"| {row_name} | " + " | ".join(_fmt(row.get(k)) for k in keys) + " |")
                else:
                    lines.append(f"| {row_name} | {_fmt(row)} |")
        else:
            lines += [f"- {k}: {_fmt(v)}" for k, v in part.items() if k != "part_seconds"]
        lines.append("")
    return "\n".join(lines)


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny settings on the CPU (checks the script)")
    ap.add_argument("--out", default=str(RESULTS), help="folder for gpu_check.json and gpu_check.md")
    ap.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts to run")
    args = ap.parse_args(argv)
    if not args.cpu_smoke and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); nothing measured")
        return 0
    device = torch.device("cpu" if args.cpu_smoke else "cuda")
    name = "CPU smoke run" if args.cpu_smoke else torch.cuda.get_device_name(0)
    result = {"device": name, "torch": torch.__version__, "parts": {},
              "command": "python benchmarks/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    t0 = time.perf_counter()
    for part in args.parts.split(","):
        t = time.perf_counter()
        try:
            result["parts"][part] = PARTS[part](device, args.cpu_smoke)
        except Exception as err:  # noqa: BLE001 - one part's failure is a result; the others still run
            result["parts"][part] = {"error": f"{type(err).__name__}: {str(err)[:300]}",
                                     "traceback": traceback.format_exc()[-2000:]}
        result["parts"][part]["part_seconds"] = time.perf_counter() - t
        print(part, json.dumps({k: v for k, v in result["parts"][part].items() if k != "traceback"})[:400],
              flush=True)
    result["seconds"] = time.perf_counter() - t0
    from invviz.io import atomic_write, write_json

    stem = "gpu_check_cpu_smoke" if args.cpu_smoke else "gpu_check"
    write_json(os.path.join(args.out, stem + ".json"), result)
    atomic_write(os.path.join(args.out, stem + ".md"), lambda f: f.write(markdown(result)), mode="w", what="table")
    print(f"wrote {os.path.join(args.out, stem)}.json and .md in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
