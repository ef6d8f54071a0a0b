"""A small MLP library on the public autodiff API: modules, losses, optimizers, data."""

from models.data import Digits, load_digits, one_hot, random_batches
from models.layers import MLP, Linear, ReLU, Softmax
from models.losses import cross_entropy, squared_error
from models.module import Module
from models.optim import SGD, Adam, Optimizer

__all__ = ["MLP", "SGD", "Adam", "Digits", "Linear", "Module", "Optimizer", "ReLU", "Softmax",
           "cross_entropy",
           "load_digits", "one_hot", "random_batches", "squared_error"]
