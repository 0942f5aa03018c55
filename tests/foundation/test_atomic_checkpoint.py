"""An interrupted checkpoint save leaves the previous checkpoint intact."""
import os

import pytest
import torch
from mmengine.fileio import get_file_backend
from mmengine.runner.checkpoint import save_checkpoint

from projects.mmdet3d_plugin.utils import AtomicLocalBackend, register_atomic_local_backend


def test_local_backend_is_atomic(tmp_path):
    register_atomic_local_backend()
    assert isinstance(get_file_backend(str(tmp_path / 'x.pth')), AtomicLocalBackend)


def test_interrupted_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    register_atomic_local_backend()
    path = str(tmp_path / 'epoch_1.pth')
    good = {'state_dict': {'w': torch.randn(64, 64)}, 'meta': {'epoch': 1}}
    save_checkpoint(good, path)

    def killed(*args, **kwargs):  # the process dies between writing the data and publishing it
        raise KeyboardInterrupt

    monkeypatch.setattr(os, 'replace', killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({'state_dict': {'w': torch.zeros(64, 64)}, 'meta': {'epoch': 2}}, path)
    monkeypatch.undo()

    loaded = torch.load(path, weights_only=True)
    assert loaded['meta']['epoch'] == 1
    assert torch.equal(loaded['state_dict']['w'], good['state_dict']['w'])
    assert sorted(os.listdir(tmp_path)) == ['epoch_1.pth'], 'temporary file left behind'
