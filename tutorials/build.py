"""Build the tutorial notebooks from their `py:percent` sources, executed with small settings so that the committed
notebooks carry pictures a reader sees without running anything.

    python tutorials/build.py            # every tutorial (about 2 min on 2 CPU cores)
    python tutorials/build.py 01         # the ones whose name starts with 01

The sources (`tutorials/NN_name.py`) are the ones to edit; jupytext pairs each with its notebook, and the test suite
checks that the notebooks' cells are the sources' and executes the sources.
"""

from __future__ import annotations

import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent


def sources(prefix: str = "") -> list[pathlib.Path]:
    return sorted(p for p in HERE.glob("[0-9][0-9]_*.py") if p.name.startswith(prefix))


def notebook(source: pathlib.Path):
    """The notebook of a `py:percent` source, with stable cell ids (a rebuild changes only what changed)."""
    import jupytext

    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:03d}"
    return nb


def execute(nb, timeout: int = 900):
    from nbclient import NotebookClient

    os.environ["INVVIZ_SMALL"] = "1"
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures become the cells' outputs
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
    return nb


def main(argv: list[str]) -> None:
    import nbformat

    from invviz.io import atomic_write

    for source in sources(argv[0] if argv else ""):
        nb = execute(notebook(source))
        target = source.with_suffix(".ipynb")
        atomic_write(target, lambda f: nbformat.write(nb, f), mode="w", what="notebook")
        print("wrote", target)


if __name__ == "__main__":
    main(sys.argv[1:])
