"""Method registry: `config.method` names a key here."""

from ltjax.methods.base import Method
from ltjax.methods.supervised import Supervised
from ltjax.methods.decouple import Decouple
from ltjax.methods.moco import MoCo
from ltjax.methods.sbcl_moco import SbclMoco

REGISTRY = {m.name: m for m in (Supervised, Decouple, MoCo, SbclMoco)}


def register(method_cls):
  """Add a Method subclass to the registry (usable as a class decorator)."""
  REGISTRY[method_cls.name] = method_cls
  return method_cls
