"""Long-tailed partial-label learning: CORR / RECORDS (Hong et al., "Long-Tailed Partial Label Learning via Dynamic
Rebalancing", ICLR 2023) and SoLar (Wang et al., "SoLar: Sinkhorn Label Refinery for Imbalanced Partial-Label
Learning", NeurIPS 2022).

  records.py     `Records` (CORR, + RECORDS, + mixup)
  solar.py       `SoLar`
  common.py      what both share: candidate sets, views, config keys
  candidates.py  candidate-set generation (uniform, CIFAR-100 hierarchical)
  metrics.py     the papers' extra evaluation figures
The losses are `ltjax.losses.partial_label`."""

from ltjax.methods.records.common import CIFAR10_TRAIN_STATS, CIFAR100_STATS  # noqa: F401
from ltjax.methods.records.metrics import batch_mean_top1, rank_group_accuracies, rank_groups  # noqa: F401
from ltjax.methods.records.records import Records  # noqa: F401
from ltjax.methods.records.solar import SoLar, solar_selection  # noqa: F401
