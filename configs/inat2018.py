"""iNaturalist 2018, ResNet-50, ARB repository rows (ARB's shipped configs): `--config configs/inat2018.py:row=R`.

Rows: ce, arb_ugcc (global counts), arb_ugcc_mixup (global counts + mixup α = 0.2; the default). All batch 1024,
200 epochs, lr 0.1 cosine, wd 1e-4, iNat normalisation (0.466, 0.471, 0.380) / (0.195, 0.194, 0.192) with
ColorJitter (ARB/MiSLAS; SS's recipe drops it: --config.data.color_jitter=0). Details: configs/large_lt.py.

Commands:
  python main.py --config configs/inat2018.py:row=ce --config.data.root=/data/inat2018 --workdir runs/inat_ce
  python main.py --config configs/inat2018.py:row=arb_ugcc --config.data.root=/data/inat2018 --workdir runs/inat_ugcc
  python main.py --config configs/inat2018.py:row=arb_ugcc_mixup --config.data.root=/data/inat2018 \\
      --workdir runs/inat_ugcc_mixup
(--config.data.root: the folder the iNaturalist18_train.txt / iNaturalist18_val.txt paths are relative to;
`:row=R,source=tfds` reads TFDS i_naturalist2018 instead.)
Published: the ARB paper's iNat numbers are not reproduced here (arXiv 2204.08735). MiSLAS stage 1 (CE +
mixup, same trainer, ResNet-50): 66.9% top-1, ECE 5.37%.
"""

from configs import large_lt
from configs.common import parse_arg


def get_config(arg: str = ""):
  a = parse_arg(arg, row="arb_ugcc_mixup", source="files")
  return large_lt.get_config(f"dataset=inat2018,row={a['row']},source={a['source']}")
