"""Give the model's random numbers a per-iteration seed, so that a resumed run repeats the loss curve of an
uninterrupted one.

mmengine restores the model, optimizer, schedulers and loss scaler on ``--resume``, but not the global torch
random state. Two consumers share it: the model (dropout, GridMask, the noise of the denoising queries) and
the data pipeline in the main process (mmdet3d's ``PointShuffle`` draws ``torch.randperm``). On resume the
iteration-based loop replays the skipped batches through the pipeline, which reproduces the pipeline's
stream only if the model never drew from it. So around each training step this hook parks the pipeline's
CPU state, seeds torch with ``seed + rank * 1_000_003 + iteration`` for the model, and puts the pipeline's
state back afterwards.
"""
import torch
from mmengine.hooks import Hook

from mmdet3d.registry import HOOKS


@HOOKS.register_module()
class IterSeedHook(Hook):
    """Per-iteration model seed; the data pipeline keeps its own continuous torch CPU stream.

    Args:
        seed (int, optional): base seed; defaults to the runner's seed (``randomness.seed`` or the one it drew).
    """
    priority = 'VERY_HIGH'

    def __init__(self, seed=None):
        self.seed = seed
        self._pipeline_state = None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._pipeline_state = torch.get_rng_state()
        base = self.seed if self.seed is not None else runner.seed
        torch.manual_seed((int(base) + runner.rank * 1_000_003 + runner.iter) % (2**63 - 1))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self._pipeline_state is not None:
            torch.set_rng_state(self._pipeline_state)
            self._pipeline_state = None
