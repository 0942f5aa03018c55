"""Check a checkpoint file before a Runner loads it, and read its stored seed.

A truncated ``.pth`` (a copy cut short, a full disk) otherwise fails deep inside ``torch.load`` with a message
that names neither the file nor the fix. ``torch.save`` writes a zip archive whose central directory sits at
the end of the file: a cut file has none (or one pointing past the end), which is found without reading the
tensors. Files in torch's legacy (non-zip) format are loaded once to check them.
"""
import os
import os.path as osp
import zipfile
from typing import Optional

import torch


class CheckpointFileError(ValueError):
    """A checkpoint file is missing, truncated or unreadable."""


def _truncated(path: str, size: int, why: str) -> CheckpointFileError:
    return CheckpointFileError(f'checkpoint {path} ({size} bytes) is truncated or corrupt ({why}); use an earlier '
                               'one (the other iter_*/epoch_*.pth in its work dir)')


def check_checkpoint_file(path: str) -> None:
    """Raise :class:`CheckpointFileError` naming ``path`` and its size if it is missing, cut or unreadable."""
    if not osp.isfile(path):
        raise CheckpointFileError(f'checkpoint {path} does not exist')
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        magic = f.read(4)
    if magic.startswith(b'PK'):
        try:
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if info.header_offset + info.compress_size > size:
                        raise _truncated(path, size, f'member {info.filename} ends past the end of the file')
        except zipfile.BadZipFile as err:
            raise _truncated(path, size, f'no zip central directory: {err}') from None
        return
    try:  # legacy torch format: load it to check it
        torch.load(path, map_location='cpu', weights_only=False)
    except Exception as err:  # noqa: BLE001  (any failure means the file cannot be used)
        raise _truncated(path, size, f'{type(err).__name__}: {err}') from None


def checkpoint_seed(path: str) -> Optional[int]:
    """``meta['seed']`` that mmengine stored in the checkpoint (None if absent). Memory-maps zip checkpoints, so
    the tensors are not read."""
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=False, mmap=True)
    except RuntimeError:  # legacy format: no mmap
        ckpt = torch.load(path, map_location='cpu', weights_only=False)
    seed = (ckpt.get('meta') or {}).get('seed') if isinstance(ckpt, dict) else None
    return None if seed is None else int(seed)
