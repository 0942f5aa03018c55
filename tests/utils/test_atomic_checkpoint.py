"""The `atomic_local` checkpoint backend: an interrupted save leaves the previous checkpoint intact, files get the
mode a plain open() gives (umask), it is chosen by the config (importing the plugin swaps nothing), and every
save of a training run goes through it."""
import os
import stat

import pytest
import torch
from mmengine.config import Config
from mmengine.fileio import get_file_backend
from mmengine.fileio.backends import LocalBackend
from mmengine.runner.checkpoint import save_checkpoint

import projects.mmdet3d_plugin  # noqa: F401
from projects.mmdet3d_plugin.utils import AtomicLocalBackend

ATOMIC = dict(backend='atomic_local')


def test_plain_paths_keep_mmengine_backend_and_config_selects_atomic(tmp_path, repo_root):
    assert type(get_file_backend(str(tmp_path / 'x.pth'))) is LocalBackend
    assert isinstance(get_file_backend(str(tmp_path / 'x.pth'), backend_args=dict(ATOMIC)), AtomicLocalBackend)
    runtime = Config.fromfile(os.path.join(repo_root, 'configs/_base_/default_runtime.py'))
    assert runtime.default_hooks.checkpoint.backend_args == ATOMIC


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = str(tmp_path / 'epoch_1.pth')
    good = {'state_dict': {'w': torch.randn(64, 64)}, 'meta': {'epoch': 1}}
    save_checkpoint(good, path, backend_args=dict(ATOMIC))

    def killed(*args, **kwargs):  # the process dies between writing the data and publishing it
        raise KeyboardInterrupt

    monkeypatch.setattr(os, 'replace', killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({
            'state_dict': {
                'w': torch.zeros(64, 64)
            },
            'meta': {
                'epoch': 2
            }
        },
                        path,
                        backend_args=dict(ATOMIC))
    monkeypatch.undo()

    loaded = torch.load(path, weights_only=True)
    assert loaded['meta']['epoch'] == 1
    assert torch.equal(loaded['state_dict']['w'], good['state_dict']['w'])
    assert sorted(os.listdir(tmp_path)) == ['epoch_1.pth'], 'temporary file left behind'


@pytest.mark.parametrize('umask', [0o022, 0o002, 0o077])
def test_checkpoint_mode_follows_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        save_checkpoint({'w': torch.ones(2)}, str(tmp_path / 'a.pth'), backend_args=dict(ATOMIC))
        with open(tmp_path / 'reference', 'wb') as f:  # what a plain open() gives under this umask
            f.write(b'x')
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(tmp_path / 'a.pth').st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / 'reference').st_mode) == 0o666 & ~umask, oct(mode)


def test_every_training_save_is_atomic(tmp_path, monkeypatch):
    """CheckpointHook with the config's backend_args, several saves in one run: each goes through the backend
    (mmengine pops 'backend' out of the dict it is given; the hook's own dict must survive)."""
    from reliability_helpers import IndexDataset, ToyModel, toy_runner
    puts = []
    original = AtomicLocalBackend.put

    def counting_put(self, obj, filepath):
        puts.append(os.path.basename(str(filepath)))
        return original(self, obj, filepath)

    monkeypatch.setattr(AtomicLocalBackend, 'put', counting_put)
    runner = toy_runner(
        tmp_path,
        ToyModel(),
        IndexDataset(8),
        dict(type='IterBasedTrainLoop', max_iters=3),
        checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=1, backend_args=dict(ATOMIC)))
    runner.train()
    assert puts == ['iter_1.pth', 'iter_2.pth', 'iter_3.pth']
