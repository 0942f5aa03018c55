"""Install the CMT plugin package (`projects.mmdet3d_plugin`) into an environment.

The OpenMMLab stack itself is installed by `bash tools/install.sh` (mmcv needs a source build with ops and
mmdet3d needs --no-deps; see requirements.txt). `pip install -e .` afterwards makes the plugin importable
from anywhere; the tools in `tools/` also work without it.
"""
from setuptools import find_packages, setup

setup(
    name='cmt-bias-attention',
    version='0.1.0',
    description='CMT (Cross Modal Transformer) with geometric attention bias as an mmdetection3d 1.x plugin',
    packages=find_packages(include=['projects', 'projects.*']),
    python_requires='>=3.10',
    install_requires=['torch>=2.1', 'numpy'],
    zip_safe=False,
)
