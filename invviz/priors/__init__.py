"""Generator priors: DGN-AM (Nguyen et al. 2016) and PPGN-h (Nguyen et al. 2017) for any classifier, and the
generators and code priors they need.

- Generators: :class:`DeePSiMFc6` (loads converted weights from a path), :class:`CompactGenerator` (trains on a
  CPU), :func:`load_generator_state`, :class:`GeneratorImage` (a generator as an image parameterization).
- Training: :func:`train_generator` (pixel + comparator-feature + adversarial losses with loss-ratio balancing),
  :func:`code_statistics` (clipping bounds), :func:`train_code_dae` / :class:`CodeDAE`, :class:`JointPrior`
  (`R(h) = E(G(h))`). Encoders and comparators are any callables `images -> features`, e.g.
  `invviz.models.Probe(model, "global_pool").latent`.
- Samplers: :func:`dgn_am`, :func:`ppgn_h`, batched over chains, on any core objective.
"""

from ..settings import PPGNSettings
from .generators import CompactGenerator, DeePSiMFc6, GeneratorImage, ImageGenerator, load_generator_state
from .samplers import (
    CodeSampler,
    SamplerResult,
    authors_class_term,
    class_log_probability,
    class_probability,
    dgn_am,
    ppgn_h,
)
from .trainers import CodeDAE, JointPrior, code_statistics, train_code_dae, train_generator

__all__ = ["CompactGenerator", "DeePSiMFc6", "GeneratorImage", "ImageGenerator", "load_generator_state",
           "CodeSampler", "SamplerResult", "authors_class_term", "class_log_probability", "class_probability",
           "dgn_am", "ppgn_h", "PPGNSettings", "CodeDAE", "JointPrior", "code_statistics", "train_code_dae", "train_generator"]
