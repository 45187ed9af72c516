"""Weight-space symmetries: function-preserving permutations, sign flips and positive scaling, and
weight matching (Git Re-Basin) — for MLPs and CNNs built from specs, and transformers of the covered
families (:mod:`.transformer`)."""

from .align import align
from .any_module import SymmetryCheck, SymmetryGroup, check_symmetry, symmetry_groups
from .permutation import Perms, apply_permutation, node_permutation, permute_hidden
from .sign_scale import apply_scaling, eligible_groups, flip_signs, scale
from .transformer import apply_transformer_permutation, sample_transformer_perms

__all__ = ["Perms", "SymmetryCheck", "SymmetryGroup", "check_symmetry", "symmetry_groups", "align", "apply_permutation", "apply_scaling", "apply_transformer_permutation",
           "eligible_groups", "flip_signs", "node_permutation", "permute_hidden", "sample_transformer_perms",
           "scale"]
