"""Optimizers and learning-rate schedules laid out as ``torch.optim``."""

from autodiff.optim import lr_scheduler
from autodiff.optim.optimizer import SGD, Adam, Optimizer

__all__ = ["SGD", "Adam", "Optimizer", "lr_scheduler"]
