"""Shared pytest setup: the repo root and tests/ on sys.path, the `gpu`, `gpu_alone` and `slow` markers, the synthetic
data set, CPU threads split among pytest-xdist workers, the GPU shared among them (``gpu_turns``).

The test folders mirror the package (attention, configs, datasets, engine, evaluation, models, utils) plus tools/
for the command-line tools. Helpers shared by several folders live beside this file and are imported by name
(``from cmt_test_utils import ...``, ``pipeline_helpers``, ``reliability_helpers``).
"""
import os
import os.path as osp
import sys
import tempfile

import pytest

TESTS = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(TESTS)
for _path in (TESTS, ROOT):
    if _path not in sys.path:
        sys.path.insert(0, _path)


def pytest_configure(config):
    config.addinivalue_line('markers', 'gpu: needs a CUDA device (skipped on CPU)')
    config.addinivalue_line('markers', 'gpu_alone: a gpu test that times the GPU: no other gpu test runs meanwhile')
    config.addinivalue_line('markers', 'slow: takes more than ~20 s on a 2-core CPU')
    share_threads_among_workers()


def share_threads_among_workers():
    """Under pytest-xdist (`-n N`) give each worker (and the subprocesses its tests start) cpu_count / N threads.

    Every torch process otherwise takes all cores: 8 workers on 16 cores ran 128 threads and the suite slowed
    down several times over on the GPU machine."""
    workers = int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '0'))
    if workers <= 1 or 'OMP_NUM_THREADS' in os.environ:
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    os.environ['OMP_NUM_THREADS'] = os.environ['MKL_NUM_THREADS'] = str(threads)
    import torch
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def gpu_turns(request):
    """Under pytest-xdist, a `gpu_alone` test holds the GPU alone: it takes an exclusive lock on a file shared by the
    run's workers, every other `gpu` test a shared one. Timing relations (GPU idle vs busy time, the idle probe)
    do not hold while another worker's kernels share the device (session 29: a 225 us kernel read 3-5 ms)."""
    xdist_run = os.environ.get('PYTEST_XDIST_TESTRUNUID')
    if request.node.get_closest_marker('gpu') is None or xdist_run is None:
        yield
        return
    import fcntl
    alone = request.node.get_closest_marker('gpu_alone') is not None
    with open(osp.join(tempfile.gettempdir(), f'cmt_bias_gpu_tests_{xdist_run}.lock'), 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope='session')
def repo_root():
    return ROOT


# A tiny synthetic nuScenes set (2 scenes x 4 keyframes, infos and CMT GT database), built once per session
# and shared by the data, model and training tests.
NUM_SCENES, SAMPLES_PER_SCENE, SEED = 2, 4, 3


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory):
    from projects.mmdet3d_plugin.datasets.synthetic.build import build_synthetic_dataset
    root = str(tmp_path_factory.mktemp('nuscenes_synthetic'))
    build_synthetic_dataset(root, NUM_SCENES, seed=SEED, samples_per_scene=SAMPLES_PER_SCENE, progress=False)
    return root


@pytest.fixture(scope='session')
def nusc(synthetic_root):
    from nuscenes.nuscenes import NuScenes
    return NuScenes(version='v1.0-mini', dataroot=synthetic_root, verbose=False)


@pytest.fixture(scope='session')
def mmdet3d_scope():
    from mmengine.registry import init_default_scope

    import projects.mmdet3d_plugin  # noqa: F401  (registers the transforms)
    init_default_scope('mmdet3d')
