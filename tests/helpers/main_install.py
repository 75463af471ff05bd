"""A Python that sees only what the README's first command installs: invviz, its dependencies (not its extras)
and the standard library — nothing else that happens to be installed here (the test extras above all).

:func:`environment` links the top-level modules of those distributions into one folder and returns the environment
for a subprocess that runs `python -S` (no site-packages) with that folder on its path, and a `bin/` in front of
`PATH` whose `python`, `invviz` and `torchrun` run that way. A README block that needs scikit-image, peft or pytest
then fails as it fails for a new user after the first command alone.
"""

from __future__ import annotations

import os
import pathlib
import re
import sys
from importlib import metadata

from packaging.requirements import Requirement


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main_closure(root: str = "invviz") -> set[str]:
    """The distributions `pip install root` brings in: its requirements without extras, transitively."""
    seen: set[str] = set()
    stack = [root]
    while stack:
        name = _norm(stack.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in reqs:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                stack.append(req.name)
    return seen


def environment(folder: pathlib.Path, root: pathlib.Path) -> dict[str, str]:
    """Build the folder (`site/` of links, `bin/` of launchers) and return the subprocess environment."""
    site, bin_ = folder / "site", folder / "bin"
    site.mkdir(parents=True, exist_ok=True)
    bin_.mkdir(exist_ok=True)
    allowed = main_closure() - {"invviz"}
    for dist in metadata.distributions():
        if _norm(dist.metadata["Name"]) not in allowed:
            continue
        base = pathlib.Path(dist.locate_file(""))
        for f in dist.files or []:
            top = f.parts[0]
            if top.endswith(".dist-info") or top in ("..", "__pycache__") or top.endswith(".pth"):
                if not top.endswith(".dist-info"):
                    continue
            src, dst = base / top, site / top
            if src.exists() and not dst.exists():
                dst.symlink_to(src)
    (site / "invviz").symlink_to(root / "invviz")
    py = sys.executable
    for name, target in (("python", ""), ("invviz", "-m invviz"), ("torchrun", "-m torch.distributed.run")):
        launcher = bin_ / name
        launcher.write_text(f'#!/bin/sh\nexec "{py}" -S {target} "$@"\n')
        launcher.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(site)
    env["MPLBACKEND"] = "Agg"  # a notebook test may have set the inline backend, which this install lacks
    env["PATH"] = f"{bin_}{os.pathsep}{env.get('PATH', '')}"
    return env
