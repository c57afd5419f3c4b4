"""Quickstart: ARB-Loss on the embedded digits data made long-tailed (ρ = 0.1), ResNet-32, 2 CPU cores.

The digits are scikit-learn's bundled 8×8 handwritten digits (no download): 30 test images per class are held out,
and the long-tailed training subset (imbalance ratio 10, 144 → 14 images per class) is drawn from the rest with the
same code as CIFAR-LT.

Command:
  python main.py --config configs/quickstart.py --workdir runs/quickstart
Expected: about 32 s on 2 CPU cores; best top-1 97.3% on the balanced test set, many/medium/few 100.0 / 97.8 /
93.3, ECE 1.7% (measured 2026-12-03 with the oneDNN convolutions and the one-pass BatchNorm variance,
docs/BENCHMARKS.md; 97.0% with LTJAX_BN_VARIANCE=two_pass, 96.3% with XLA's own convolutions as well).
"""

from ltjax.config import default


def get_config():
  c = default()
  c.data.name = "digits"
  c.data.imb_factor = 0.1
  c.data.group_bounds = (3, 7)
  c.loss.name = "arb"
  c.loss.arb_counts = "batch"
  c.optim.lr = 0.1
  c.optim.weight_decay = 5e-4
  c.optim.schedule = "arb_cosine"
  c.train.epochs = 30
  c.train.batch_size = 64
  c.train.eval_batch_size = 100
  c.train.log_every = 10
  c.train.eval_every = 5
  c.train.checkpoint_every = 5
  return c
