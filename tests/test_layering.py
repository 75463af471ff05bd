"""The package's layering: nothing imports upward, and the method packages do not import each other."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "invviz"

# lower numbers are lower layers; a module may import its own layer's package and anything below
LAYERS = {
    "errors": 0, "_compat": 0, "validate": 0, "settings": 0,
    "io": 1, "metrics": 1, "data": 1, "plotting": 2,
    "training": 2,
    "models": 3,
    "optvis": 4,
    "ifv": 5, "priors": 5, "align": 5,
    "inversion": 6, "attribution": 6, "microscope": 6, "dictionary": 6,
    "cli": 7, "__init__": 8, "__main__": 8,
}


def top(module: str) -> str:
    return module.split(".")[0]


def imported(path: pathlib.Path) -> set[str]:
    """Top-level invviz subpackages a file imports (absolute `invviz.x` or relative)."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts)
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0:
                if node.module and node.module.startswith("invviz."):
                    out.add(top(node.module[len("invviz."):]))
                continue
            base = parts[:-node.level] if node.level <= len(parts) else []
            if node.module:
                target = base + node.module.split(".")
            else:
                target = base + [a.name for a in node.names][:1]
            if target:
                out.add(target[0])
            elif node.module is None:
                out.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(top(a.name[len("invviz."):]) for a in node.names if a.name.startswith("invviz."))
    return out


def test_nothing_imports_upward():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = top(str(path.relative_to(PACKAGE).with_suffix("")).replace("/", "."))
        for name in imported(path):
            if name == own or name not in LAYERS:
                continue
            if LAYERS[name] > LAYERS[own] or (LAYERS[name] == LAYERS[own] == 5 and name != own):
                bad.append(f"{path.relative_to(PACKAGE)} imports {name} (layer {LAYERS[name]} > {own}'s"
                           f" {LAYERS[own]})")
    assert not bad, "\n".join(bad)


def test_one_training_loop_and_one_weights_reader():
    names = [p.name for p in PACKAGE.rglob("*.py")]
    assert names.count("training.py") == 0 and (PACKAGE / "training" / "loop.py").exists()
    readers = [p for p in PACKAGE.rglob("*.py") if "torch.load(" in p.read_text()]
    assert [p.name for p in readers] == ["io.py"], readers


def test_only_the_capture_hooks_into_a_forward():
    """Reading and writing inside a model's forward go through one mechanism (`models/capture.py`): no other module
    registers hooks of its own."""
    hooking = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
                     if "register_forward" in p.read_text() or "register_full_backward" in p.read_text())
    assert hooking == ["models/capture.py"], hooking


def test_validators_live_in_one_module_below_their_users():
    defs = sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")
                  if "def check_positive_int(" in p.read_text() or "def check_learning_rate(" in p.read_text())
    assert defs == ["validate.py"]
    users = [p for p in PACKAGE.rglob("*.py") if "check_positive_int" in p.read_text()]
    assert len(users) > 5 and all(LAYERS[top(str(p.relative_to(PACKAGE).with_suffix("")).replace("/", "."))]
                                  >= LAYERS["validate"] for p in users)


def test_the_atlas_is_a_package_with_its_site_shipped_as_files():
    static = PACKAGE / "microscope" / "static"
    assert {p.name for p in static.iterdir()} >= {"atlas.html", "atlas.css", "atlas.js"}
    for path in (PACKAGE / "microscope").glob("*.py"):
        text = path.read_text()
        assert "<style" not in text and "document.getElementById" not in text, path.name  # no site in strings
    tomllib = pytest.importorskip("tomllib")

    data = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "microscope/static/*" in data["invviz"]  # shipped in the wheel
