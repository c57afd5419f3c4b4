"""Multi-process training: two JAX processes on 127.0.0.1 (2 virtual CPU devices each) train one job on file-backed
data (host path) and on user arrays (device path) and end with the parameters one process with 4 devices reaches on the same global batch; an interrupted
multi-process run resumes mid-epoch to the same result. Subprocesses have timeouts and are killed on failure."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests import jpeg_tree
from tests.multihost_worker import build_config

from ltjax import distributed
from ltjax.train import pretrained, run as run_lib

from tests.cfgutil import ROOT  # noqa: E402
TIMEOUT = 300
CONFIG = "dataset=imagenet_lt,row=arb_ugcc_mixup"


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _overrides(root):
  return {"data.root": root, "data.image_size": 16, "data.eval_resize": 18, "model.name": "resnet8",
          "train.batch_size": 8, "train.eval_batch_size": 8, "train.epochs": 2, "train.progress_bar": False,
          "train.log_every": 1, "train.eval_every": 2, "seed": 3}


def _run_job(tmp_path, spec, num_processes=2):
  """Starts the processes of one job; returns their return codes (all killed after TIMEOUT)."""
  spec = dict(spec, coordinator=f"127.0.0.1:{_free_port()}", num_processes=num_processes)
  path = tmp_path / f"spec_{_free_port()}.json"
  path.write_text(json.dumps(spec))
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu",
             TF_CPP_MIN_LOG_LEVEL="3", JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir or "",
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5")
  procs = [subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "multihost_worker.py"), str(path), str(i)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i in range(num_processes)]
  outs, codes = [], []
  try:
    for p in procs:
      out, _ = p.communicate(timeout=TIMEOUT)
      outs.append(out)
      codes.append(p.returncode)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  return codes, outs


def _params(workdir):
  return pretrained.load_variables(str(workdir), "last")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("inlt"))
  jpeg_tree.make_tree(root, [5, 4, 2, 1], 1, lists=("ImageNet_LT_train.txt", "ImageNet_LT_test.txt"))
  return root  # 12 train images, batch 8 → steps of 8 and 4, two epochs = 4 steps


@pytest.mark.tensorflow
@pytest.mark.parametrize("per_call", [3])  # 1 step per call: the same split by process, cheaper (test_train)
def test_two_processes_preempted_mid_epoch_and_resumed_equal_one_process_with_four_devices(tree, tmp_path, per_call):
  """One 2-process job stops at step 3 (mid-epoch 2; checkpoint saved collectively), a new 2-process job resumes it
  to the end: the parameters equal an uninterrupted single-process run on 4 devices with the same global batch.
  With 3 steps per call each process stacks its slices of the batches (steps of 8 and 4: one padded group each)."""
  from ltjax.train import loop
  over = dict(_overrides(tree), **{"train.steps_per_call": per_call})
  cfg = build_config({"config": CONFIG, "overrides": dict(over, **{"mesh.num_devices": 4})})
  ref_dir = tmp_path / "single"
  loop.train_and_evaluate(cfg, str(ref_dir))
  ref = _params(ref_dir)

  spec = {"config": CONFIG, "overrides": over, "workdir": str(tmp_path / "multi")}
  codes, outs = _run_job(tmp_path, dict(spec, stop_at_step=3))
  assert codes == [143, 143], "\n\n".join(o[-3000:] for o in outs)
  codes, outs = _run_job(tmp_path, spec)
  assert codes == [0, 0], "\n\n".join(o[-3000:] for o in outs)
  multi = _params(tmp_path / "multi")
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6), multi, ref)
  # Logged once (process 0), one line per step across both jobs: the second job started at step 3.
  lines = [json.loads(l) for l in open(tmp_path / "multi" / "metrics.jsonl")]
  assert [l["step"] for l in lines if l["split"] == "train"] == [1, 2, 3, 4]
  res = json.loads((tmp_path / "multi" / "results.json").read_text())
  assert res["steps"] == 4
  # Evaluation gathered every process's slice of the test split: the same numbers as the single process.
  single = json.loads((ref_dir / "results.json").read_text())
  assert res["final"]["top1"] == single["final"]["top1"] and res["final"]["ece"] == pytest.approx(
      single["final"]["ece"], abs=1e-3)


@pytest.mark.multidevice
def test_device_data_path_two_processes_preempted_and_resumed_equal_one_process(tmp_path):
  """The device data path across processes: each process holds the whole split (user arrays, 16×16 with random
  crops and flips, mixup), builds its devices' slices of every global batch inside the step, is stopped mid-epoch and
  resumed by a new 2-process job (3 steps per call): the parameters equal one process with 4 devices."""
  from tests.data.test_device_data import write_npz

  from ltjax.train import loop
  arrays = write_npz(tmp_path / "a.npz", side=16, classes=5, per_class=10)
  over = {"data.name": "npz", "data.path": arrays, "data.imb_factor": 0.5, "data.group_bounds": (),
          "model.name": "resnet8", "train.batch_size": 8, "train.eval_batch_size": 8, "train.epochs": 2,
          "train.progress_bar": False, "train.log_every": 1, "train.eval_every": 2, "train.steps_per_call": 3,
          "supervised.mixup_alpha": 1.0, "seed": 3}
  cfg = build_config({"config_file": "quickstart", "overrides": dict(over, **{"mesh.num_devices": 4})})
  run = run_lib.setup(cfg)
  assert run.train_input.on_device and run.data.crop_padding == 2
  spe = run.train_input.steps_per_epoch  # 35 images, batch 8: 4 steps (the short batch of 3 < 4 devices is dropped)
  ref_dir = tmp_path / "single"
  loop.train_and_evaluate(cfg, str(ref_dir))
  spec = {"config_file": "quickstart", "overrides": over, "workdir": str(tmp_path / "multi")}
  codes, outs = _run_job(tmp_path, dict(spec, stop_at_step=spe + 2))
  assert codes == [143, 143], "\n\n".join(o[-3000:] for o in outs)
  codes, outs = _run_job(tmp_path, spec)
  assert codes == [0, 0], "\n\n".join(o[-3000:] for o in outs)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6), _params(tmp_path / "multi"),
               _params(ref_dir))
  res = json.loads((tmp_path / "multi" / "results.json").read_text())
  single = json.loads((ref_dir / "results.json").read_text())
  assert res["steps"] == 2 * spe and res["final"]["top1"] == single["final"]["top1"]


def test_distributed_settings_from_config_and_environment():
  class D:
    coordinator_address, num_processes, process_id, cluster_detection = "", 0, -1, False

  assert distributed.settings(D(), environ={}) is None
  env = {"JAX_COORDINATOR_ADDRESS": "h:1", "JAX_NUM_PROCESSES": "4", "JAX_PROCESS_ID": "2"}
  assert distributed.settings(D(), environ=env) == {"coordinator_address": "h:1", "num_processes": 4,
                                                     "process_id": 2}
  d = D()
  d.coordinator_address, d.num_processes, d.process_id = "a:2", 2, 1
  assert distributed.settings(d, environ=env) == {"coordinator_address": "a:2", "num_processes": 2, "process_id": 1}
  d.process_id = 5
  with pytest.raises(ValueError, match="process_id"):
    distributed.settings(d, environ={})
  with pytest.raises(ValueError, match="incomplete"):
    distributed.settings(D(), environ={"JAX_COORDINATOR_ADDRESS": "h:1"})
  d = D()
  d.cluster_detection = True
  assert distributed.settings(d, environ={}) == {}
