#!/usr/bin/env bash
# Downloads, on this (networked) machine, the pure-Python wheels that ltjax needs and the accelerator machine's image
# lacks (its package list: /work/.library/device/KINDS.md): ml-collections (configs, main.py) and tensorboardX
# (TensorBoard event files). Everything else ltjax needs there (JAX with CUDA, Flax, Optax, Orbax, absl, numpy,
# scikit-learn, tqdm, PyYAML, protobuf) is in the image; TensorFlow is not, and ltjax does not need it there.
# The wheels land in .whl/ (git-ignored); the device tool carries them with `carry: [".whl"]`.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any -d .whl \
  ml-collections==1.1.0 tensorboardX==2.6.5
ls -la .whl
