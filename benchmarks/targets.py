"""The speed targets: engine / hand-written NumPy, per training step, and per op."""

# engine / NumPy targets per step and way of running it: eager; the loss compiled (backward and
# update outside); the whole step compiled (forward, backward, update); the whole step fused
# (backend="numba": loops for the elementwise ops and reductions, BLAS for the matmuls)
TARGETS = {
    "notebook step, float64": {"engine": 1.40, "compiled": 1.00, "whole step": 0.95,
                               "fused": 0.70},
    "notebook step, float32": {"engine": 1.40, "compiled": 1.00, "whole step": 0.95,
                               "fused": 0.70},
    "notebook step as the PyTorch cell, float64": {"engine": 1.90, "compiled": 1.00,
                                                   "whole step": 0.95, "fused": 0.72},
    "notebook step as the PyTorch cell, float32": {"engine": 2.40, "compiled": 1.00,
                                                   "whole step": 0.97, "fused": 0.72},
    "notebook step with Adam, float64": {"engine": 2.00, "whole step": 1.00, "fused": 1.00},
    "large MLP step, float64": {"engine": 1.00, "compiled": 0.90, "whole step": 0.95,
                                "fused": 0.93},
    "large MLP step, float32": {"engine": 1.00, "compiled": 0.95, "whole step": 0.97,
                                "fused": 0.95},
}
KINDS = {"engine": "eager", "compiled": "loss compiled", "whole step": "whole step compiled",
         "fused": "whole step fused (numba)"}
PER_OP_TARGET = 3.5  # µs of bookkeeping per op, forward and backward (eager)
NOTEBOOK_RUN_TARGET = 0.95  # the notebook's whole training, whole step compiled / NumPy
FUSED_RUN_TARGET = 0.75  # the same, fused (numba's compile time included) / NumPy
FIRST_CALL_TARGETS = {"cold": 5.0, "disk cache": 1.0}  # s: trace + numba's compile, fused step
