"""Reseed the model's random numbers at every training iteration, so that a resumed run repeats the loss
curve of an uninterrupted one.

mmengine restores the model, optimizer, schedulers and loss scaler on ``--resume``, but not the global torch
random state, which the model draws from (dropout, GridMask, the noise of the denoising queries). Seeding
torch with ``seed + iteration`` before each step makes step ``i`` draw the same numbers whether or not the run
was interrupted before it. The data pipeline's numpy state needs no help: the iteration-based loop replays
the skipped batches through the pipeline on resume.
"""
import torch
from mmengine.hooks import Hook

from mmdet3d.registry import HOOKS


@HOOKS.register_module()
class IterSeedHook(Hook):
    """Seed torch (CPU and CUDA) with ``seed + rank * 1_000_003 + iteration`` before each training iteration.

    Args:
        seed (int, optional): base seed; defaults to the runner's seed (``randomness.seed`` or the one it drew).
    """
    priority = 'VERY_HIGH'

    def __init__(self, seed=None):
        self.seed = seed

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        base = self.seed if self.seed is not None else runner.seed
        torch.manual_seed((int(base) + runner.rank * 1_000_003 + runner.iter) % (2**63 - 1))
