"""An atlas of the embedded EfficientNet-Lite0: wall time, units per second and peak memory, in one process and in two
gloo processes under torchrun, the two atlases compared file by file, and a screenshot of the site in Chromium.

    python benchmarks/atlas_lite0.py                     # ~40 min on 2 CPU cores

Both runs use the command line as a user would (`invviz atlas tf_efficientnet_lite0 --layers blocks.3,blocks.4 ...`,
dataset examples from the bundled photos); the 2-process run is `torchrun --nproc_per_node 2 -m invviz atlas ...`
with one thread per process (the 1-process run has both). Peak memory is the largest resident set of any process.
Writes `--out` and the screenshot `assets/atlas_lite0_blocks4.png`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import time

from invviz.io import write_json

ROOT = pathlib.Path(__file__).resolve().parents[1]


def digest(folder: pathlib.Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "run.json"}


def timed(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds and the peak resident set (MiB) of the command's processes (via GNU time)."""
    t0 = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=ROOT, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    seconds = time.perf_counter() - t0
    peak = max(int(line.split(":")[1]) for line in out.stderr.splitlines() if "Maximum resident set size" in line)
    return seconds, peak / 1024


def screenshot(site: pathlib.Path, png: pathlib.Path) -> None:
    import shutil

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1400,900",
                 f"--user-data-dir={site.parent / 'chrome-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get((site / "index.html").as_uri())
        driver.find_element(By.CSS_SELECTOR, "nav button[data-layer='blocks.4']").click()
        time.sleep(1.0)
        box = driver.find_element(By.ID, "search")
        box.send_keys("7")
        time.sleep(1.0)
        driver.save_screenshot(str(png))
    finally:
        driver.quit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", default="blocks.3,blocks.4")
    ap.add_argument("--units", default=None, help="e.g. 0-31 (default: every unit)")
    ap.add_argument("--steps", default="128")
    ap.add_argument("--recipe", default="--lr 0.1 --lr-schedule cosine --transforms fused")
    ap.add_argument("--work", default="benchmarks/results/atlas_lite0")
    ap.add_argument("--out", default="benchmarks/results/atlas_lite0.json")
    args = ap.parse_args()
    work = ROOT / args.work
    one, two = work / "one", work / "two"
    common = ["tf_efficientnet_lite0", "--layers", args.layers, "--steps", args.steps, "--size", "128", "--batch",
              "16", "--top-k", "6", "--no-progress", "--no-resume", *args.recipe.split()]
    if args.units:
        common += ["--units", args.units]
    env = {**os.environ}
    s1, m1 = timed([sys.executable, "-m", "invviz", "atlas", *common, "--out", str(one)], env)
    index = json.loads((one / "index.json").read_text())
    n_units = sum(len(v["units"]) for v in index["layers"].values())
    s2, m2 = timed([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29541",
                    "-m", "invviz", "atlas", *common, "--out", str(two)], {**env, "OMP_NUM_THREADS": "1"})
    d1, d2 = digest(one), digest(two)
    same = d1 == d2
    differing = sorted(f for f in set(d1) | set(d2) if d1.get(f) != d2.get(f))
    shot = ROOT / "assets" / "atlas_lite0_blocks4.png"
    screenshot(one, shot)
    summary = {"command": "python benchmarks/atlas_lite0.py " + " ".join(f"--{k} '{v}'" for k, v in vars(args).items()
                                                                         if v and k not in ("out", "work")),
               "units": n_units, "one_process": {"seconds": s1, "units_per_second": n_units / s1, "peak_mib": m1},
               "two_gloo_processes": {"seconds": s2, "units_per_second": n_units / s2, "peak_mib_per_process": m2},
               "same_files": same, "differing_files": differing, "screenshot": str(shot.relative_to(ROOT))}
    write_json(ROOT / args.out, summary)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
