"""PyTorch reference for benchmarks/train_step.py and resnet50_step.py: the same training steps on CPU.

ResNet-32 (He et al. 2016 §4.2, option-A shortcuts, BatchNorm, linear head; as in LDAM-DRW/MiSLAS), cross-entropy,
or torchvision-layout ResNet-50 at 224² (`--model resnet50`), SGD momentum 0.9 with weight decay 5e-4, float32,
synthetic device-resident batches. Times steady-state img/s in
eager mode and, if it works here, under torch.compile.

  python benchmarks/torch_reference.py                        # batches 128 and 512, eager and compile
  python benchmarks/torch_reference.py --batch 128 --modes eager --steps 20
  python benchmarks/torch_reference.py --model resnet50 --batch 64 --modes eager --steps 3 --warmup 1
  python benchmarks/torch_reference.py --model resnet50 --batch 256 --device cuda --bf16 --channels-last  # on a GPU
Prints one JSON line per (mode, batch). PyTorch is an optional benchmark dependency:
  pip install torch==2.13.0   (CPU build)
"""

import argparse
import os
import platform
import resource
import sys
import time

try:
  import torch
  import torch.nn as nn
  import torch.nn.functional as F
except ImportError:
  sys.exit("benchmarks/torch_reference.py needs PyTorch, an optional benchmark dependency that is not installed.\n"
           "Install the CPU build with:  pip install torch==2.13.0")


class LambdaLayer(nn.Module):

  def __init__(self, fn):
    super().__init__()
    self.fn = fn

  def forward(self, x):
    return self.fn(x)


class BasicBlock(nn.Module):

  def __init__(self, in_planes, planes, stride=1):
    super().__init__()
    self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(planes)
    self.shortcut = nn.Identity()
    if stride != 1 or in_planes != planes:  # option A: subsample and zero-pad channels
      p = planes // 4
      self.shortcut = LambdaLayer(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p), "constant", 0))

  def forward(self, x):
    out = F.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    return F.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):

  def __init__(self, depth=32, num_classes=100):
    super().__init__()
    n = (depth - 2) // 6
    self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(16)
    layers, in_planes = [], 16
    for stage, planes in enumerate((16, 32, 64)):
      for b in range(n):
        layers.append(BasicBlock(in_planes, planes, 2 if stage > 0 and b == 0 else 1))
        in_planes = planes
    self.layers = nn.Sequential(*layers)
    self.linear = nn.Linear(64, num_classes)
    for m in self.modules():
      if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(m.weight)

  def forward(self, x):
    out = F.relu(self.bn1(self.conv1(x)))
    out = self.layers(out)
    out = F.adaptive_avg_pool2d(out, 1).flatten(1)
    return self.linear(out)


class Bottleneck(nn.Module):
  """torchvision's ResNet v1.5 bottleneck (stride on the 3x3), 1x1 conv + BN projection shortcut."""

  def __init__(self, in_planes, planes, stride=1):
    super().__init__()
    self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(planes)
    self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(planes)
    self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
    self.bn3 = nn.BatchNorm2d(planes * 4)
    self.downsample = nn.Identity()
    if stride != 1 or in_planes != planes * 4:
      self.downsample = nn.Sequential(nn.Conv2d(in_planes, planes * 4, 1, stride, bias=False),
                                      nn.BatchNorm2d(planes * 4))

  def forward(self, x):
    out = F.relu(self.bn1(self.conv1(x)))
    out = F.relu(self.bn2(self.conv2(out)))
    return F.relu(self.bn3(self.conv3(out)) + self.downsample(x))


class ResNet50(nn.Module):
  """torchvision.models.resnet50's architecture (25,557,032 parameters at 1000 classes), written out so that the
  benchmark needs no torchvision."""

  def __init__(self, num_classes=1000):
    super().__init__()
    self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
    self.bn1 = nn.BatchNorm2d(64)
    layers, in_planes = [], 64
    for stage, (planes, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3))):
      for b in range(blocks):
        layers.append(Bottleneck(in_planes, planes, 2 if stage > 0 and b == 0 else 1))
        in_planes = planes * 4
    self.layers = nn.Sequential(*layers)
    self.fc = nn.Linear(2048, num_classes)

  def forward(self, x):
    out = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
    out = self.layers(out)
    return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


MODELS = {"resnet32": (lambda classes: ResNetCifar(32, classes), 32), "resnet50": (ResNet50, 224)}


def bench(mode, batch, steps, warmup, classes, channels_last, model_name="resnet32", device="cpu", bf16=False):
  torch.manual_seed(0)
  if device == "cuda":
    torch.cuda.reset_peak_memory_stats()
  make, size = MODELS[model_name]
  model = make(classes).to(device)
  x = torch.randn(batch, 3, size, size, device=device)
  y = torch.randint(0, classes, (batch,), device=device)
  if channels_last:
    model = model.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
  opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)

  def step(x, y):
    opt.zero_grad(set_to_none=True)
    with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):  # mixed precision, as the GPU recipes
      loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss

  if mode == "compile":
    step = torch.compile(step)
  model.train()
  t0 = time.perf_counter()
  step(x, y)
  first = time.perf_counter() - t0
  for _ in range(warmup - 1):
    step(x, y)
  t0 = time.perf_counter()
  for _ in range(steps):
    loss = step(x, y)
  float(loss)
  dt = time.perf_counter() - t0
  out = {"device": device, "bf16": bf16}
  if device == "cuda":
    out["device_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
  return {**out, "framework": "torch", "mode": mode, "model": model_name, "batch": batch, "classes": classes,
          "channels_last": channels_last, "images_per_sec": round(batch * steps / dt, 1),
          "step_ms": round(1000 * dt / steps, 2), "first_step_s": round(first, 2), "threads": torch.get_num_threads(),
          "cpu_count": os.cpu_count(), "machine": platform.machine(), "torch": torch.__version__,
          "host_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main():
  from common import emit
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--batch", type=int, nargs="+", default=[128, 512])
  p.add_argument("--modes", default="eager,compile")
  p.add_argument("--steps", type=int, default=20)
  p.add_argument("--warmup", type=int, default=3)
  p.add_argument("--classes", type=int, default=0, help="default: 100 for resnet32, 1000 for resnet50")
  p.add_argument("--model", default="resnet32", choices=sorted(MODELS))
  p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
  p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (mixed precision)")
  p.add_argument("--channels-last", action="store_true")
  p.add_argument("--out", default="")
  a = p.parse_args()
  for mode in a.modes.split(","):
    for batch in a.batch:
      try:
        classes = a.classes or (1000 if a.model == "resnet50" else 100)
        res = bench(mode, batch, a.steps, a.warmup, classes, a.channels_last, a.model, a.device, a.bf16)
      except Exception as e:  # torch.compile needs a C++ compiler; report and go on
        res = {"framework": "torch", "mode": mode, "batch": batch, "error": f"{type(e).__name__}: {e}"[:300]}
      emit(res, a.out)


if __name__ == "__main__":
  main()
