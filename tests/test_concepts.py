"""Concepts: planted directions recovered (the oracle), the streaming pass against an in-memory one, save/load,
typed errors for bad input, the concept page in the atlas and in a real browser, and 2 gloo processes = 1."""

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest
import torch
from conftest import flags_of, hooks_on
from helpers.browser import broken_images, headless, needs_chromium
from scipy.optimize import linear_sum_assignment

import invviz
from invviz.errors import CheckpointError, DataError, InvvizError, LayerNotFoundError, ObjectiveError, SettingError
from invviz.models import Probe
from invviz.models.zoo import PlantedConcepts

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def planted():
    model = PlantedConcepts(k=6, channels=16, seed=0)
    images, _ = model.images(48, seed=1)
    return model, images


def matched_cosines(found: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Cosines of the planted directions with the found ones after Hungarian matching."""
    cos = (found / found.norm(dim=1, keepdim=True)) @ (truth / truth.norm(dim=1, keepdim=True)).T
    rows, cols = linear_sum_assignment(-cos.numpy())
    return cos[rows, cols]


@pytest.mark.parametrize("method, options", [("nmf", {}), ("sae", {"top_k": 2, "sae_steps": 600})])
def test_planted_concepts_are_recovered(planted, method, options):
    model, images = planted
    flags = flags_of(model)
    c = invviz.concepts(model, "mix", images, 6, method=method, positions=None, top_n=3, crop=16, **options)
    cos = matched_cosines(c.directions, model.directions)
    assert float(cos.median()) >= 0.99, cos
    assert c.r2 > 0.95 and c.dead == 0 and float(c.importance.sum()) == pytest.approx(1, abs=1e-5)
    assert flags_of(model) == flags and hooks_on(model) == 0


def test_pca_is_the_weaker_baseline_on_planted_concepts(planted):
    model, images = planted
    c = invviz.concepts(model, "mix", images, 6, method="pca", positions=None, top_n=2, crop=16)
    assert float(matched_cosines(c.directions, model.directions).median()) < 0.95
    assert c.r2 > 0.99  # six components span the six planted directions: PCA reconstructs, it does not separate


def test_evidence_and_classes_on_planted_concepts(planted):
    """Each concept's top example is a tile that holds its pattern, and class c (whose head row is the planted
    direction c) relies most on the concept matched to direction c."""
    model, images = planted
    c = invviz.concepts(model, "mix", images, 6, positions=None, top_n=4, crop=16)
    assert c.examples.shape == (6, 4, 3, 16, 16) and c.examples.dtype == torch.uint8
    assert c.heatmaps.shape == (6, 4, 16, 16) and (c.scores[:, :-1] >= c.scores[:, 1:]).all()
    cos = (c.directions / c.directions.norm(dim=1, keepdim=True)) @ model.directions.T
    rows, cols = linear_sum_assignment(-cos.numpy())
    concept_of = {int(t): int(r) for r, t in zip(rows, cols)}
    # the whole-pass maximum of each concept's code equals its top score
    feats = invviz.models.features(model, "mix", images)["mix"]
    codes = c.encode(feats.permute(0, 2, 3, 1).reshape(-1, 16))
    assert torch.allclose(codes.amax(0), c.scores[:, 0], rtol=1e-4, atol=1e-6)
    assert set(c.class_ids.tolist()) <= set(range(6)) and len(c.class_ids) >= 4
    for cls in c.class_ids.tolist():
        assert c.concepts_of(cls, 1)[0][0] == concept_of[cls]


def test_streaming_pass_equals_an_in_memory_pass(planted):
    """The sample from batches of 5 through a DataLoader is the one from the whole tensor in batches of 16: the same
    vectors (keys depend on the image, not on the batching) and so the same dictionary."""
    model, images = planted
    loader = torch.utils.data.DataLoader(images, batch_size=16)
    a = invviz.concepts(model, "mix", loader, 4, positions=8, max_vectors=200, top_n=2, crop=8, classes=False)
    b = invviz.concepts(model, "mix", images, 4, positions=8, max_vectors=200, top_n=2, crop=8, classes=False)
    assert torch.equal(a.directions, b.directions) and a.r2 == b.r2
    assert a.settings["vectors"] == 200 and a.settings["images"] == 48


def test_memory_is_bounded_by_max_vectors(planted):
    model, images = planted
    c = invviz.concepts(model, "mix", images, 3, positions=None, max_vectors=100, top_n=1, crop=8, classes=False)
    assert c.settings["vectors"] == 100 and c.settings["images"] == 48


def test_save_and_load_round_trip(planted, tmp_path):
    model, images = planted
    c = invviz.concepts(model, "mix", images, 4, method="sae", top_k=1, sae_steps=20, top_n=2, crop=8)
    path = c.save(tmp_path / "c.pt")
    back = invviz.Concepts.load(path, model)
    for name in ("directions", "importance", "center", "examples", "heatmaps", "scores", "class_scores"):
        assert torch.equal(getattr(back, name), getattr(c, name)), name
    assert back.settings == c.settings and back.r2 == c.r2
    x = torch.rand(10, 16)
    assert torch.equal(back.encode(x), c.encode(x))
    other = PlantedConcepts(k=6, channels=12)
    with pytest.raises(SettingError, match="12"):
        invviz.Concepts.load(path, other)
    (tmp_path / "bad.pt").write_bytes(b"")
    with pytest.raises(CheckpointError):
        invviz.Concepts.load(tmp_path / "bad.pt")


def test_bad_inputs_are_typed_and_leave_the_model_alone(planted, tmp_path):
    import torchvision

    model, images = planted
    flags = flags_of(model)
    with pytest.raises(SettingError, match="k"):
        invviz.concepts(model, "mix", images, 0)
    with pytest.raises(SettingError, match="need at least"):
        invviz.concepts(model, "mix", images[:2], 40, positions=1, held_out=0)
    with pytest.raises(SettingError, match="method"):
        invviz.concepts(model, "mix", images, 3, method="ica")
    with pytest.raises(DataError, match="no images"):
        invviz.concepts(model, "mix", images[:0], 3)
    with pytest.raises(DataError):
        invviz.concepts(model, "mix", [torch.zeros(3)], 3)
    with pytest.raises(LayerNotFoundError):
        invviz.concepts(model, "nope", images, 3)
    assert flags_of(model) == flags and hooks_on(model) == 0
    net = torchvision.models.resnet18().eval()
    flags = flags_of(net)
    with pytest.raises(ObjectiveError, match="method='sae'"):
        invviz.concepts(Probe(net, preprocessing=invviz.Preprocessing(source="test")), "layer2.0.bn2",
                        torch.rand(4, 3, 32, 32), 3, size=32)
    assert flags_of(net) == flags and hooks_on(net) == 0
    c = invviz.concepts(model, "mix", images, 2, top_n=1, crop=8)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(InvvizError):
        c.save(tmp_path / "a_file" / "c.pt")
    assert not list(tmp_path.rglob("*.pt")) and not list(tmp_path.rglob("*.tmp*"))


def test_render_and_the_atlas_page(planted, tmp_path):
    model, images = planted
    c = invviz.concepts(model, "mix", images, 3, top_n=2, crop=16)
    res = c.render(model, steps=3, size=32)
    assert res.images.shape == (3, 3, 32, 32) and c.images is res.images
    atlas = invviz.atlas(model, "mix", tmp_path, units={"mix": []}, concepts=c, steps=2, size=32, data=None,
                         progress=False)
    page = atlas.index["layers"]["mix · nmf concepts"]
    assert page["kind"] == "concepts" and len(page["units"]) == 3 and page["r2"] == pytest.approx(c.r2)
    for j, entry in page["units"].items():
        assert (tmp_path / entry["image"]).is_file() and len(entry["examples"]) == 2
        assert all((tmp_path / e["image"]).is_file() and (tmp_path / e["attribution"]).is_file()
                   for e in entry["examples"])
        assert entry["classes"] == [[cls, pytest.approx(s, abs=1e-6)] for cls, s in c.top_classes(int(j), 5)]


def test_the_cli_writes_a_result_and_a_site(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    from PIL import Image

    for i in range(6):
        Image.fromarray((torch.rand(48, 48, 3) * 255).byte().numpy()).save(folder / f"{i}.png")
    out = subprocess.run([sys.executable, "-m", "invviz", "concepts", "resnet18", "--no-pretrained", "--layer",
                          "layer2", "--data", str(folder), "--k", "3", "--size", "48", "--steps", "2", "--top-n", "2",
                          "--out", str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "site" / "concepts.pt").is_file() and (tmp_path / "site" / "index.html").is_file()
    back = invviz.Concepts.load(tmp_path / "site" / "concepts.pt")
    assert back.k == 3 and back.layer == "layer2"
    bad = subprocess.run([sys.executable, "-m", "invviz", "concepts", "resnet18", "--no-pretrained", "--layer",
                          "layer2", "--data", str(tmp_path / "none"), "--k", "3", "--out", str(tmp_path / "x")],
                         cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_two_gloo_processes_learn_the_same_concepts_as_one(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, torch, invviz\n"
        "from invviz.models.zoo import PlantedConcepts\n"
        "from invviz.training import distributed as ddp\n"
        "m = PlantedConcepts()\n"
        "x, _ = m.images(40, seed=1)\n"
        "for method in ('nmf', 'sae'):\n"
        "    c = invviz.concepts(m, 'mix', torch.utils.data.DataLoader(x, batch_size=4), 5, method=method,\n"
        "                        positions=8, top_n=3, crop=8, top_k=2, sae_steps=40, sae_batch=64)\n"
        "    if ddp.is_main():\n"
        "        c.save(sys.argv[1] + '_' + method + '.pt')\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, str(script), str(tmp_path / "one")], capture_output=True, text=True,
                         env=env)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          "29541", str(script), str(tmp_path / "two")], capture_output=True, text=True, env=env,
                         timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    for method in ("nmf", "sae"):
        a = invviz.Concepts.load(tmp_path / f"one_{method}.pt")
        b = invviz.Concepts.load(tmp_path / f"two_{method}.pt")
        assert a.settings == b.settings
        assert torch.allclose(a.directions, b.directions, atol=1e-5), method
        assert torch.equal(a.examples, b.examples) and torch.allclose(a.scores, b.scores, atol=1e-5)
        assert torch.equal(a.class_ids, b.class_ids)


@needs_chromium
def test_the_concepts_page_in_a_real_browser(planted, tmp_path):
    from selenium.webdriver.common.by import By

    model, images = planted
    c = invviz.concepts(model, "mix", images, 4, top_n=3, crop=16)
    c.save(tmp_path / "c.pt")
    saved = invviz.Concepts.load(tmp_path / "c.pt")
    invviz.atlas(model, "mix", tmp_path, units=[0, 1], concepts=saved, steps=2, size=32, data=images[:8],
                 progress=False)
    driver = headless(tmp_path / "profile")
    try:
        driver.get((tmp_path / "index.html").as_uri())
        driver.find_element(By.CSS_SELECTOR, "nav button[data-layer='mix · nmf concepts']").click()
        time.sleep(0.2)
        assert int(driver.find_element(By.ID, "count").get_attribute("data-count")) == saved.k
        assert not broken_images(driver)
        shown = driver.execute_script("return document.querySelectorAll('#panel .examples figure').length")
        assert shown == saved.examples.shape[1]
        assert "concept 0" in driver.find_element(By.ID, "panel-title").text
        assert len(driver.find_elements(By.CSS_SELECTOR, "#classes li")) == min(5, len(saved.class_ids))
        box = driver.find_element(By.ID, "search")
        box.send_keys("2")
        time.sleep(0.2)
        assert "concept 2" in driver.find_element(By.ID, "panel-title").text
        index = json.loads((tmp_path / "index.json").read_text())
        assert len(index["layers"]["mix · nmf concepts"]["units"]) == saved.k
    finally:
        driver.quit()


def test_concepts_of_a_vit_read_its_tokens_and_their_gradients():
    """A token layer (class token dropped, the grid from the patch embedding; the first of two blocks, so the class
    token reads it through attention): the concepts, their evidence and the
    classes' gradient x concept activation, taken at the layer's own token output and laid out like the features."""
    from conftest import small_vit

    vit = small_vit(num_classes=5)
    flags = flags_of(vit)
    images = torch.rand(6, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    probe = Probe(vit, preprocessing=invviz.Preprocessing(input_size=(3, 64, 64), fixed_input_size=True,
                                                           source="test"))
    c = invviz.concepts(probe, "blocks.0", images, 3, method="sae", sae_steps=20, top_n=2, crop=16)
    assert c.directions.shape == (3, 48) and c.examples.shape == (3, 2, 3, 16, 16)
    assert len(c.class_ids) >= 1 and torch.isfinite(c.class_scores).all() and c.class_scores.abs().sum() > 0
    assert flags_of(vit) == flags and hooks_on(vit) == 0
