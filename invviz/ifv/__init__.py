"""Grad-IFV (Reinbold & Westermann 2020): recover the objective a feature visualization was optimized for.

The aggregated direction objective, batched-VJP Jacobians, `recover_objective` (with multi-point Jacobians for
non-smooth networks, and checks that say when the answer is not trustworthy), realizations (Adam then L-BFGS),
Hoyer target sampling, the critical-space search (Algorithm 1: co-kernels, principal angles, SLERP merging, nested
intervals over eps), re-optimization SSIM, and `match` across networks.
"""

from .critical import CriticalSpace, critical_space, critical_spaces
from .jacobian import free_variables, jacobian, pixel_realization, response_fn
from .match import Match, match
from .objective import AggregatedDirection, Aggregation, IFVObjective, aggregate, aggregate_as, aggregated_direction
from .realize import Realization, objective_gradient, realize, reoptimize
from .recover import (
    RecoveredObjective,
    angle_deg,
    cosine_matrix,
    point_jacobians,
    recover_objective,
    solve,
    trust_warnings,
)
from .sampling import hoyer_sparseness, project_nonneg, sample_targets
from .subspace import Subspace, co_kernel, complement, merge, merge_all, orthonormalize, principal_angles, slerp

__all__ = [
    "AggregatedDirection", "Aggregation", "IFVObjective", "aggregate", "aggregate_as", "aggregated_direction", "free_variables", "jacobian",
    "pixel_realization", "response_fn", "RecoveredObjective", "angle_deg", "cosine_matrix", "point_jacobians",
    "recover_objective",
    "solve", "trust_warnings", "hoyer_sparseness", "project_nonneg", "sample_targets", "Subspace", "co_kernel",
    "complement", "merge", "merge_all", "orthonormalize", "principal_angles", "slerp", "CriticalSpace",
    "critical_space", "critical_spaces", "Realization", "objective_gradient", "realize", "reoptimize", "Match",
    "match",
]
