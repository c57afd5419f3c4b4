"""CDB: class-wise difficulty-balanced cross-entropy (Sinha, Ohashi and Nakamura, "Class-Wise Difficulty-Balanced
Loss for Solving Class-Imbalance", ACCV 2020; official code hitachi-rd-cv/CDB-loss, `CIFAR-LT/`).

  method.py     `CDB`: the method (its state: the class weights; updated between epochs from a held-out split)

Added as the worked recipe of docs/ARCHITECTURE.md, "Adding a method": this package, configs/cdb_*.py,
tests/methods/cdb/test_cdb.py and one line in ltjax/methods/__init__.py.
"""

from ltjax.methods.cdb.method import CDB, cdb_weights  # noqa: F401
