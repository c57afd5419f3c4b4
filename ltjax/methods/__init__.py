"""Method registry: `config.method` names a key here."""

from ltjax.methods.base import Method
from ltjax.methods.sbcl import SBCL
from ltjax.methods.supervised import Supervised

REGISTRY = {m.name: m for m in (Supervised, SBCL)}


def register(method_cls):
  """Add a Method subclass to the registry (usable as a class decorator)."""
  REGISTRY[method_cls.name] = method_cls
  return method_cls
