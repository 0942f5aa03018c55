"""Crash-safe local writes for checkpoints.

mmengine's LocalBackend.put opens the target with 'wb' and writes: a run killed mid-write leaves a truncated
file, and when the target already existed (re-saving ``epoch_N.pth`` after a resume, ``last_checkpoint``)
the previous good copy is gone. This backend writes to a temporary file in the same directory, fsyncs it
and renames it over the target (``os.replace`` is atomic on POSIX), so a reader sees either the old or the
new file, never a partial one. Registered as mmengine's ``local`` backend when the plugin is imported.
"""
import os
import os.path as osp
import tempfile
from pathlib import Path
from typing import Union

from mmengine.fileio import io as io_module
from mmengine.fileio import register_backend
from mmengine.fileio.backends import LocalBackend


class AtomicLocalBackend(LocalBackend):
    """LocalBackend whose ``put``/``put_text`` replace the target atomically."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        filepath = str(filepath)
        directory = osp.dirname(osp.abspath(filepath))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.' + osp.basename(filepath) + '.', suffix='.tmp', dir=directory)
        try:
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
    """Make ``get_file_backend`` return :class:`AtomicLocalBackend` for local paths."""
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')
    # drop LocalBackend instances cached before this call so that every later lookup gets the atomic one
    for key in [k for k, v in io_module.backend_instances.items() if type(v) is LocalBackend]:
        del io_module.backend_instances[key]
