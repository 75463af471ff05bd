"""Data-parallel feature alignment on CPU: `invviz align` in one process against the same command under
`torchrun --nproc_per_node 2` (gloo on loopback), the same global batches. Reports the wall time of both, the largest
difference of the per-step losses and of the final weights, and the distance between the two fine-tuned weights
relative to how far fine-tuning moved them.

    python benchmarks/ddp_align.py                        # ~1 min on 2 CPU cores

The 1-process run uses both cores (2 threads); each of the 2 processes uses one. Model: the embedded Lite0, latent
`blocks.4`, 96 px crops of the bundled photo `chelsea`, global batch 8.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import torch

import invviz
from invviz.io import load_checkpoint_state, write_json

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run(cmd: list[str], threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", default="benchmarks/results/ddp_align.json")
    args = ap.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="invviz_ddp_"))
    common = ["align", "tf_efficientnet_lite0", "--data", "chelsea", "--layer", "blocks.4", "--size", "96",
              "--steps", str(args.steps), "--batch", str(args.batch), "--no-progress"]
    result = {"command": f"python benchmarks/ddp_align.py --steps {args.steps} --batch {args.batch}"}
    runs = {}
    for name, launcher, threads in (("1 process", [sys.executable, "-m", "invviz"], 2),
                                    ("2 gloo processes", [sys.executable, "-m", "torch.distributed.run",
                                                          "--nproc_per_node", "2", "--master_port", "29547",
                                                          "-m", "invviz"], 1)):
        tag = name.split()[0]
        out, ckpt = work / f"wrapper{tag}.pt", work / f"train{tag}.pt"
        seconds = run(launcher + common + ["--out", str(out), "--train-checkpoint", str(ckpt)], threads)
        runs[name] = {"seconds": seconds, "losses": [h["loss"] for h in load_checkpoint_state(ckpt)["history"]],
                      "weights": load_checkpoint_state(out)["modules"]["wrapper"]}
        result[name] = {"wall_seconds": seconds, "seconds_per_step": seconds / args.steps,
                        "losses": runs[name]["losses"]}
        print(name, f"{seconds:.1f} s", flush=True)
    a, b = runs["1 process"], runs["2 gloo processes"]
    result["max_loss_relative_difference"] = max(abs(x - y) / max(abs(x), 1e-12)
                                                 for x, y in zip(a["losses"], b["losses"]))
    result["first_step_loss_relative_difference"] = abs(a["losses"][0] - b["losses"][0]) / abs(a["losses"][0])
    result["max_weight_difference"] = max(float((a["weights"][k].double() - b["weights"][k].double()).abs().max())
                                          for k in a["weights"] if torch.is_floating_point(a["weights"][k]))
    # how far apart the two fine-tunings are, relative to how far each moved from the original weights
    start = {"model." + k: v for k, v in invviz.load_model("tf_efficientnet_lite0").state_dict().items()}
    keys = [k for k in a["weights"] if k in start and torch.is_floating_point(start[k])]
    moved = sum(float(((a["weights"][k].double() - start[k].double()) ** 2).sum()) for k in keys) ** 0.5
    apart = sum(float(((a["weights"][k].double() - b["weights"][k].double()) ** 2).sum()) for k in keys) ** 0.5
    result["update_norm"] = moved
    result["difference_over_update_norm"] = apart / moved
    result["same_number_of_steps"] = len(a["losses"]) == len(b["losses"]) == args.steps
    write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k not in runs}, indent=1, default=str)[:2000])


if __name__ == "__main__":
    main()
