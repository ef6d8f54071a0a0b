"""The notebook's own pieces (the MLP, its loss, the digits data, the hand-derived backprop,
the training loops) on the public autodiff API; the modules, losses and optimizers PyTorch keeps
in torch.nn and torch.optim come from `autodiff.nn` and `autodiff.optim`, re-exported here."""

from autodiff.nn import Linear, Module, ReLU, Softmax
from autodiff.nn.functional import cross_entropy
from autodiff.optim import SGD, Adam, Optimizer
from models.data import Digits, load_digits, one_hot, random_batches
from models.layers import MLP
from models.losses import squared_error

__all__ = ["MLP", "SGD", "Adam", "Digits", "Linear", "Module", "Optimizer", "ReLU", "Softmax",
           "cross_entropy",
           "load_digits", "one_hot", "random_batches", "squared_error"]
