"""`invviz.atlas` (this package, `invviz.microscope`): every unit of chosen layers rendered into a browsable static
site, with the dataset examples that excite each unit most (OpenAI Microscope's view, for the user's own model).

Units are rendered in fixed batches (the batch a unit falls in depends only on the layer's unit list and `batch`,
and its seed only on the layer and the batch), so a run gives the same files whatever the number of processes and
whether it was interrupted: under `torchrun` the batches are dealt to the ranks, each rank writes its units' PNGs,
and rank 0 writes the index. A unit already on disk (its PNG and its record) is not rendered again, so an
interrupted atlas continues where it stopped. Dataset examples come from one streaming pass over the data (a top-k
per unit, so memory does not grow with the data), sharded over the ranks and merged by rank 0.

Layout of `out_dir`: `index.html` (opens from the file system: no server, no network), `index.json`, and per layer
`LAYER/unit_NNNN.png` (the visualization), `LAYER/unit_NNNN.json` (its record) and `LAYER/examples/unit_NNNN_K.png`.

The package: `core` renders the units and writes the index, `examples` mines the dataset examples (one streaming
pass) and their attributions, `site` writes the static site from the files in `static/` (HTML, CSS and JavaScript
shipped with the package) and the pages of concepts (:func:`invviz.concepts`).
"""

from .core import INDEX_VERSION, Atlas, atlas, batch_seed
from .site import site

__all__ = ["Atlas", "atlas", "batch_seed", "site", "INDEX_VERSION"]
