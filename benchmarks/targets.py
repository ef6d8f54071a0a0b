"""The speed targets: engine / hand-written NumPy, per training step, and per op."""

# engine / NumPy targets per step: (eager, compiled)
TARGETS = {"notebook step, float64": (1.40, 1.00), "notebook step, float32": (1.40, 1.00),
           "notebook step as the PyTorch cell, float64": (1.45, 1.00),
           "notebook step as the PyTorch cell, float32": (1.45, 1.00),
           "large MLP step, float64": (1.00, 0.90), "large MLP step, float32": (1.00, 0.95)}
PER_OP_TARGET = 3.5  # µs of bookkeeping per op, forward and backward (eager)
