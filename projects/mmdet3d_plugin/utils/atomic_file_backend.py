"""Crash-safe local writes for checkpoints: mmengine file backend ``atomic_local``.

mmengine's LocalBackend.put opens the target with 'wb' and writes: a run killed mid-write leaves a truncated
file, and when the target already existed (re-saving ``epoch_N.pth`` after a resume, ``last_checkpoint``)
the previous good copy is gone. This backend writes to a temporary file in the same directory, fsyncs it,
gives it the mode a plain ``open`` would (0666 minus the umask; ``mkstemp`` makes 0600) and renames it over
the target (``os.replace`` is atomic on POSIX), so a reader sees either the old or the new file, never a
partial one.

Nothing is swapped globally: importing the plugin registers the backend under its own name, and a config
opts in through the checkpoint hook (``configs/_base_/default_runtime.py`` does)::

    default_hooks = dict(checkpoint=dict(type='CheckpointHook', backend_args=dict(backend='atomic_local')))
"""
import os
import os.path as osp
import tempfile
from pathlib import Path
from typing import Union

from mmengine.fileio import register_backend
from mmengine.fileio.backends import LocalBackend

BACKEND_NAME = 'atomic_local'


def _default_file_mode() -> int:
    """0666 minus the process umask: the mode ``open(path, 'w')`` gives a new file."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


class AtomicLocalBackend(LocalBackend):
    """LocalBackend whose ``put``/``put_text`` replace the target atomically."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        filepath = str(filepath)
        directory = osp.dirname(osp.abspath(filepath))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.' + osp.basename(filepath) + '.', suffix='.tmp', dir=directory)
        try:
            os.fchmod(fd, _default_file_mode())
            with os.fdopen(fd, 'wb') as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
        except BaseException:
            if osp.exists(tmp):
                os.remove(tmp)
            raise

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        self.put(obj.encode(encoding), filepath)


def register_atomic_local_backend() -> None:
    """Register :class:`AtomicLocalBackend` as mmengine file backend ``atomic_local`` (idempotent); the
    ``local`` backend (and every path without ``backend_args``) stays mmengine's."""
    register_backend(BACKEND_NAME, AtomicLocalBackend, force=True)
