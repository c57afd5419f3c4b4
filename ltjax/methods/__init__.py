"""Method registry: `config.method` names a key of `REGISTRY`.

Each family is a package under `ltjax/methods/<family>/` (its Method classes, host-side algorithms, schedules);
adding one is a package plus the one line below that names its classes (docs/ARCHITECTURE.md, "Adding a method").
"""

from ltjax.methods.base import Method  # noqa: F401
from ltjax.methods.cdb import CDB
from ltjax.methods.mislas import MiSLASStage2
from ltjax.methods.moco import MoCo
from ltjax.methods.records import Records, SoLar
from ltjax.methods.sbcl import SBCL, SbclMoco
from ltjax.methods.semi_self import Decouple, Rotation
from ltjax.methods.supervised import Supervised

REGISTRY = {m.name: m for m in (Supervised, Rotation, Decouple, MoCo, SBCL, SbclMoco, Records, SoLar, CDB,
                                    MiSLASStage2)}


def register(method_cls):
  """Add a Method subclass to the registry (usable as a class decorator)."""
  REGISTRY[method_cls.name] = method_cls
  return method_cls
