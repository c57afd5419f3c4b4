"""ImageNet-LT, ResNet-50, ARB repository rows (ARB's shipped configs): `--config configs/imagenet_lt.py:row=R`.

Rows: ce (batch 1024), arb (batch counts, 768), arb_ugcc (global counts, 768), arb_ugcc_mixup (global counts +
mixup α = 0.2, 1024; the default). All 200 epochs, lr 0.1 cosine, wd 5e-4. Details: configs/large_lt.py.

Commands:
  python main.py --config configs/imagenet_lt.py:row=ce --config.data.root=/data/imagenet --workdir runs/inlt_ce
  python main.py --config configs/imagenet_lt.py:row=arb --config.data.root=/data/imagenet --workdir runs/inlt_arb
  python main.py --config configs/imagenet_lt.py:row=arb_ugcc --config.data.root=/data/imagenet --workdir runs/inlt_ugcc
  python main.py --config configs/imagenet_lt.py:row=arb_ugcc_mixup --config.data.root=/data/imagenet \\
      --workdir runs/inlt_ugcc_mixup
(--config.data.root: the ImageNet root the ImageNet_LT_*.txt paths are relative to, holding the lists or with
--config.data.lists_dir; `:row=R,source=tfds` reads TFDS imagenet_lt from --config.data.data_dir instead.)
Published: the ARB paper's ImageNet-LT numbers are not reproduced here (arXiv 2204.08735). MiSLAS stage 1
(CE + mixup, same trainer, ResNet-50): 45.5% top-1, ECE 7.98%.
"""

from configs import large_lt
from configs.common import parse_arg


def get_config(arg: str = ""):
  a = parse_arg(arg, row="arb_ugcc_mixup", source="files")
  return large_lt.get_config(f"dataset=imagenet_lt,row={a['row']},source={a['source']}")
