"""Peak memory of `invviz.visualize` against batch size and image size.

    python benchmarks/visualize_memory.py            # ~3 min on 2 CPU cores

Setting: torchvision resnet18 (random weights), `layer3`, the default recipe, 4 steps, 2 threads. Each render runs in
a fresh process; the figure is the peak resident memory of the process minus its resident memory just before the
render (the model loaded, one warm-up render at batch 1 and 32 px done), so it is the render's own memory: the
images, their transforms, the network's activations kept for the backward, and the optimizer's state. On CUDA the
same render is checked before its first step against the device's free memory (a `DeviceMemoryError` names the
batch that fits); that path is not measured here (no GPU was lent).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from _common import RESULTS, save_result

CHILD = """
import json, resource, sys, torch, torchvision, invviz
torch.set_num_threads(2)
batch, size = int(sys.argv[1]), int(sys.argv[2])
torch.manual_seed(0)
net = torchvision.models.resnet18().eval()
probe = invviz.Probe(net, preprocessing=invviz.Preprocessing(source="ImageNet mean/std"))
invviz.visualize(probe, "layer3", 0, steps=2, size=32, progress=False)
def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024
before = rss()
invviz.visualize(probe, "layer3", list(range(batch)), steps=4, size=size, progress=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"batch": batch, "size": size, "render_mib": peak - before, "process_peak_mib": peak}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", default="1,4,16,64")
    ap.add_argument("--sizes", default="128,224")
    ap.add_argument("--out", default=f"{RESULTS}/visualize_memory.json")
    args = ap.parse_args()
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for batch in (int(b) for b in args.batches.split(",")):
            out = subprocess.run([sys.executable, "-c", CHILD, str(batch), str(size)], capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(out.stderr[-2000:])
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    save_result(args.out, "visualize", {"rows": rows})


if __name__ == "__main__":
    main()
