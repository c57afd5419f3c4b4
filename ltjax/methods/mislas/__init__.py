"""MiSLAS stage 2 (Zhong et al., "Improving Calibration for Long-Tailed Recognition", CVPR 2021; official
dvlab-research/MiSLAS `train_stage2.py`): `MiSLASStage2`."""

from ltjax.methods.mislas.method import MiSLASStage2  # noqa: F401
