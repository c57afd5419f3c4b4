"""Method registry: `config.method` names a key here."""

from ltjax.methods.base import Method
from ltjax.methods.decouple import Decouple
from ltjax.methods.moco import MoCo
from ltjax.methods.records import Records, SoLar
from ltjax.methods.rotation import Rotation
from ltjax.methods.sbcl import SBCL
from ltjax.methods.sbcl_moco import SbclMoco
from ltjax.methods.supervised import Supervised

REGISTRY = {m.name: m for m in (Supervised, Rotation, Decouple, MoCo, SBCL, SbclMoco)}
REGISTRY.update({m.name: m for m in (Records, SoLar)})  # long-tailed partial-label learning (spec B)


def register(method_cls):
  """Add a Method subclass to the registry (usable as a class decorator)."""
  REGISTRY[method_cls.name] = method_cls
  return method_cls
