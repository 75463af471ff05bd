"""The tutorials: `py:percent` sources paired with committed notebooks (which carry small-setting outputs), and every
source runs top to bottom on CPU with small settings (INVVIZ_SMALL=1)."""

import importlib.util
import pathlib

import nbformat
import pytest

TUTORIALS = pathlib.Path(__file__).resolve().parents[1] / "tutorials"
spec = importlib.util.spec_from_file_location("build_tutorials", TUTORIALS / "build.py")
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)
SOURCES = build.sources()


def test_every_notebook_is_its_source_and_carries_outputs():
    assert SOURCES, "no tutorial sources found"
    for source in SOURCES:
        target = source.with_suffix(".ipynb")
        assert target.exists(), f"{target.name} missing: run python tutorials/build.py"
        on_disk = nbformat.read(target, as_version=4)
        want = build.notebook(source)
        assert [c.source for c in on_disk.cells] == [c.source for c in want.cells], \
            f"{target.name} is not its source's notebook: run python tutorials/build.py {source.name[:2]}"
        images = sum("image/png" in o.get("data", {}) for c in on_disk.cells if c.cell_type == "code"
                     for o in c.get("outputs", []))
        assert images > 0, f"{target.name} was committed without its outputs: run python tutorials/build.py"


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES, ids=[p.name for p in SOURCES])
def test_tutorial_runs(source, monkeypatch):
    monkeypatch.setenv("INVVIZ_SMALL", "1")
    nb = build.execute(build.notebook(source))
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
