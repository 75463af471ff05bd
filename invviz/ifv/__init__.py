"""Grad-IFV (seed 001): recover the objective a feature visualization was optimized for.

Aggregation, batched-VJP Jacobians, `recover_objective` (with multi-point Jacobians for non-smooth networks),
realizations (Adam then L-BFGS), Hoyer target sampling, the critical-space search (Algorithm 1: co-kernels, principal
angles, SLERP merging, nested intervals over eps), re-optimization SSIM, and `match` across networks.
"""

from .jacobian import aggregate, free_variables, jacobian, pixel_realization, response_fn
from .critical import CriticalSpace, critical_space, critical_spaces
from .match import Match, match
from .realize import Realization, objective_gradient, realize, reoptimize
from .recover import RecoveredObjective, angle_deg, cosine_matrix, recover_objective, solve
from .sampling import hoyer_sparseness, project_nonneg, sample_targets
from .subspace import Subspace, co_kernel, complement, merge, merge_all, orthonormalize, principal_angles, slerp

__all__ = [
    "aggregate", "free_variables", "jacobian", "pixel_realization", "response_fn", "RecoveredObjective",
    "angle_deg", "cosine_matrix", "recover_objective", "solve", "hoyer_sparseness", "project_nonneg",
    "sample_targets", "Subspace", "co_kernel", "complement", "merge", "merge_all", "orthonormalize",
    "principal_angles", "slerp", "CriticalSpace", "critical_space", "critical_spaces", "Realization",
    "objective_gradient", "realize", "reoptimize", "Match", "match",
]
