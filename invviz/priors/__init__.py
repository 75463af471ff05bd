"""Generator priors (seed 002): DGN-AM and PPGN-h for any classifier, and the generators and code priors they need.

- Generators: :class:`DeePSiMFc6` (loads converted weights from a path), :class:`CompactGenerator` (trains on a
  CPU), :func:`load_generator_state`, :class:`GeneratorImage` (a generator as an image parameterization).
- Training: :func:`train_generator` (pixel + comparator-feature + adversarial losses with loss-ratio balancing),
  :func:`code_statistics` (clipping bounds), :func:`train_code_dae` / :class:`CodeDAE`, :class:`JointPrior`
  (`R(h) = E(G(h))`), :class:`LayerFeatures` (encoder/comparator from any model's layer).
- Samplers: :func:`dgn_am`, :func:`ppgn_h`, batched over chains, on any core objective.
"""

from ..models.features import LayerFeatures
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
from .training import CodeDAE, Discriminator, JointPrior, code_statistics, train_code_dae, train_generator

__all__ = ["LayerFeatures", "CompactGenerator", "DeePSiMFc6", "GeneratorImage", "ImageGenerator",
           "load_generator_state", "CodeSampler", "SamplerResult", "authors_class_term", "class_log_probability",
           "class_probability", "dgn_am", "ppgn_h", "CodeDAE", "Discriminator", "JointPrior", "code_statistics",
           "train_code_dae", "train_generator"]
