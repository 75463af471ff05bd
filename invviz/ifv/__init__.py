"""Grad-IFV (seed 001): recover the objective a feature visualization was optimized for.

In so far: aggregation, batched-VJP Jacobians, `recover_objective`, Hoyer target sampling, and the subspace tools
of the critical-space search (principal angles, SLERP, pairwise merging, co-kernels).
"""

from .jacobian import aggregate, free_variables, jacobian, pixel_realization, response_fn
from .recover import RecoveredObjective, angle_deg, cosine_matrix, recover_objective, solve
from .sampling import hoyer_sparseness, project_nonneg, sample_targets
from .subspace import Subspace, co_kernel, complement, merge, merge_all, orthonormalize, principal_angles, slerp

__all__ = [
    "aggregate", "free_variables", "jacobian", "pixel_realization", "response_fn", "RecoveredObjective",
    "angle_deg", "cosine_matrix", "recover_objective", "solve", "hoyer_sparseness", "project_nonneg",
    "sample_targets", "Subspace", "co_kernel", "complement", "merge", "merge_all", "orthonormalize",
    "principal_angles", "slerp",
]
