"""The atlas: every unit rendered and indexed, dataset examples from one streaming pass, resumable, the same files
from 1 and 2 processes, and a site that works in a real browser."""

import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers.browser import broken_images, headless, needs_chromium

import invviz
from invviz.models import Preprocessing

ROOT = pathlib.Path(__file__).resolve().parents[1]
ARGS = ["resnet18", "--no-pretrained", "--layers", "layer2,layer3", "--units", "0-5", "--steps", "6", "--size", "40",
        "--batch", "4", "--top-k", "2", "--no-progress"]


def digest(folder: pathlib.Path) -> dict[str, str]:
    """sha256 of every file under `folder` but the run's timing."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "run.json"}


def run_cli(args, env=None, **kw):
    return subprocess.run([sys.executable, "-m", "invviz", "atlas", *args], cwd=ROOT, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, **kw)


def test_atlas_writes_every_unit_an_index_and_examples(tmp_path):
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18().eval()
    net.invviz_preprocessing = Preprocessing(source="test")
    res = invviz.atlas(net, ["layer2"], tmp_path, units=[0, 1, 2], steps=4, size=40, batch=2, top_k=3,
                       progress=False)
    index = json.loads((tmp_path / "index.json").read_text())
    assert res.rendered == 3 and set(index["layers"]["layer2"]["units"]) == {"0", "1", "2"}
    for unit in index["layers"]["layer2"]["units"].values():
        assert (tmp_path / unit["image"]).is_file() and len(unit["examples"]) == 3
        acts = [e["activation"] for e in unit["examples"]]
        assert acts == sorted(acts, reverse=True)
        assert all((tmp_path / e["image"]).is_file() for e in unit["examples"])
    # the examples are the photos' strongest activations: check the best one against a full pass
    photos = torch.stack([invviz.data.load_photo(n, 224) for n in sorted(invviz.data.photo_paths())])
    with torch.no_grad():
        f = invviz.models.features(net, ["layer2"], photos)["layer2"]
    best = f.flatten(2).amax(2)[:, 1].max()
    assert index["layers"]["layer2"]["units"]["1"]["examples"][0]["activation"] == pytest.approx(float(best), rel=1e-4)
    again = invviz.atlas(net, ["layer2"], tmp_path, units=[0, 1, 2], steps=4, size=40, batch=2, top_k=3,
                         progress=False)
    assert again.rendered == 0 and again.skipped == 3  # resumed: nothing left to do
    assert "<script>window.ATLAS" in (tmp_path / "index.html").read_text()


@pytest.mark.slow
def test_the_atlas_takes_a_recipe_as_visualize_does(tmp_path):
    """`recipe=` names how units are rendered, with the same overrides as visualize; the index records what ran."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    lucid = invviz.settings.RECIPES["lucid"]
    res = invviz.atlas(invviz.Probe(net, preprocessing=Preprocessing(source="test")), ["1"], tmp_path, units=[0],
                       recipe="lucid", steps=3, size=24, batch=1, data=None, progress=False)
    settings = res.index["settings"]
    assert (settings["steps"], settings["lr"], settings["lr_schedule"], settings["transforms"]) == (
        3, lucid.lr, lucid.lr_schedule, lucid.transforms)
    with pytest.raises(invviz.errors.SettingError, match="recipe"):
        invviz.atlas(net, ["1"], tmp_path / "x", recipe="slow", data=None, progress=False)


def test_interrupted_atlas_resumes_to_the_same_files(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert run_cli([*ARGS, "--out", str(whole)]).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "invviz", "atlas", *ARGS, "--out", str(cut)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(cut.glob("*/unit_*.json"))) < 4:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(cut.glob("*/unit_*.json")))
    assert 0 < done < 12, f"the kill came at {done} of 12 units"
    out = run_cli([*ARGS, "--out", str(cut)])
    assert out.returncode == 0 and "already on disk" in out.stdout
    assert digest(cut) == digest(whole)


@pytest.mark.slow
def test_two_gloo_processes_write_the_same_files_as_one(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert run_cli([*ARGS, "--out", str(one)]).returncode == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533", "-m",
           "invviz", "atlas", *ARGS, "--out", str(two)]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert digest(two) == digest(one)


@pytest.mark.slow
@needs_chromium
def test_the_site_in_a_real_browser(tmp_path):
    from selenium.webdriver.common.by import By

    assert run_cli([*ARGS, "--out", str(tmp_path)]).returncode == 0
    index = json.loads((tmp_path / "index.json").read_text())
    driver = headless(tmp_path / "profile")
    try:
        driver.get((tmp_path / "index.html").as_uri())
        for layer, entry in index["layers"].items():
            driver.find_element(By.CSS_SELECTOR, f"nav button[data-layer='{layer}']").click()
            time.sleep(0.2)
            shown = int(driver.find_element(By.ID, "count").get_attribute("data-count"))
            assert shown == len(entry["units"])
            assert not broken_images(driver)
        box = driver.find_element(By.ID, "search")
        box.clear()
        box.send_keys("4")
        time.sleep(0.2)
        assert "unit 4" in driver.find_element(By.ID, "panel-title").text
    finally:
        driver.quit()


def test_named_directions_are_units_with_their_own_examples_and_attribution(tmp_path):
    """A named direction is a unit record of its own: rendered with the direction objective, scored on the data by
    the features' projection on it (its top example's score checked against a full pass), and attributed by captum
    on that projection (an index past the channels once made the attribution fail)."""
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18().eval()
    vec = torch.zeros(128)
    vec[3], vec[7] = 1.0, 2.0
    photos = torch.stack([invviz.data.load_photo(n, 64) for n in sorted(invviz.data.photo_paths())])
    site = invviz.atlas(invviz.Probe(net, preprocessing=Preprocessing(source="test")), "layer2", tmp_path,
                        units=[0, 1], directions={"three+2*seven": vec}, steps=2, size=32, batch=3, top_k=2,
                        data=photos, data_size=64, attribution=True, progress=False)
    units = site.index["layers"]["layer2"]["units"]
    assert set(units) == {"0", "1", "128"} and units["128"]["name"] == "three+2*seven"
    best = units["128"]["examples"][0]
    assert (tmp_path / best["attribution"]).is_file()
    with torch.no_grad():
        f = invviz.models.features(net, "layer2", photos, preprocessing=Preprocessing(source="test"))["layer2"]
    want = torch.einsum("c,bchw->bhw", vec, f).flatten(1).amax(1).max()
    assert best["activation"] == pytest.approx(float(want), rel=1e-4)
