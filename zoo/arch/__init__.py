"""Architectures: JSON specs <-> ``nn.Module`` (MLPs, CNNs, residual blocks, DARTS-like cells), specs of
Hugging Face models from their ``config.json``, and example inputs for one forward pass."""

from .cells import build_cells, validate_cells_spec
from .example_inputs import example_input, example_inputs
from .hf import HF_FORMAT, build_hf, hf_module_spec, hf_spec
from .reference import (
    CLASS_FORMAT,
    build_from_reference,
    class_reference,
    class_spec,
    is_class_reference,
    resolve_class_reference,
)
from .spec import (
    ACTIVATIONS,
    LAYER_TYPES,
    NORMS,
    SPEC_FORMAT,
    TORCH_CLASSES,
    TORCH_FORMAT,
    Residual,
    Sine,
    build_module,
    load_spec_file,
    spec_from_module,
    validate_spec,
)

__all__ = ["CLASS_FORMAT", "build_from_reference", "class_reference", "class_spec", "is_class_reference", "resolve_class_reference",
           "ACTIVATIONS", "HF_FORMAT", "LAYER_TYPES", "NORMS", "Residual", "SPEC_FORMAT", "Sine", "TORCH_CLASSES",
           "TORCH_FORMAT", "build_cells", "build_hf", "build_module", "hf_module_spec", "example_input", "example_inputs", "hf_spec",
           "load_spec_file", "spec_from_module", "validate_cells_spec", "validate_spec"]
