"""Command-line tools, each run as `python -m ltjax.tools.<name>` (and importable as functions):

  open_run            open a run directory in Python: config, data, model, checkpoint (`open_run(workdir)`)
  report              a run's (or several runs') results as tables and curves
  pseudolabel         pseudo-label an unlabeled pool with a trained run (semi-supervised tables)
  rotation_eval       rotation accuracy of a rotation pre-training run
  convert_moco        official MoCo / SBCL-MoCo PyTorch checkpoints → ltjax .npz
  convert_torchvision torchvision ResNet / ResNeXt checkpoints → ltjax .npz
"""
