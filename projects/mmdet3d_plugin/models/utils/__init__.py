"""Model utilities: GridMask, pretrained-checkpoint checks, CMT checkpoint and sparse-conv layout conversion."""
from .grid_mask import GridMask
from .pretrained import check_pretrained_path, require_checkpoint_file

__all__ = ['GridMask', 'check_pretrained_path', 'require_checkpoint_file']
