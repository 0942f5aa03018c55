"""Save a checkpoint and stop when the job is told to stop (SIGTERM: slurm preemption / scancel, SIGUSR1:
slurm's ``--signal=USR1@T`` warning).

The signal handler only sets a flag. After the current training iteration (after CheckpointHook) the hook
saves ``iter_<N>.pth`` in the work dir, points ``last_checkpoint`` at it (so ``--resume`` without a path picks
it up), logs where it is and raises :class:`TrainingInterrupted`; ``tools/train.py`` turns that into exit
status ``128 + signal``. In a distributed run the flag is all-reduced each iteration (one scalar), so every
rank stops after the same iteration even when the signal reaches the ranks at different times.

The handlers are installed in ``before_train``, before the dataloader forks its workers, which inherit them:
a SIGTERM sent to the whole process group does not kill a worker in the middle of the iteration.
"""
import os.path as osp
import signal
import threading

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook

from mmdet3d.registry import HOOKS


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving ``checkpoint``."""

    def __init__(self, signum: int, checkpoint: str, iteration: int):
        self.signum, self.checkpoint, self.iteration = signum, checkpoint, iteration
        super().__init__(f'{signal.Signals(signum).name} received: saved {checkpoint} after iteration {iteration}; '
                         f'continue with `python tools/train.py CONFIG --resume` (same --work-dir)')


@HOOKS.register_module()
class SignalCheckpointHook(Hook):
    """On ``signals``: checkpoint after the current iteration, log it, stop (:class:`TrainingInterrupted`).

    Args:
        signals (tuple[str]): signal names to catch.
    """
    priority = 'LOWEST'  # after CheckpointHook, so a regular save of the same iteration comes first

    def __init__(self, signals=('SIGTERM', 'SIGUSR1')):
        try:
            self.signals = tuple(getattr(signal, name) for name in signals)
        except AttributeError as err:
            raise ValueError(f'SignalCheckpointHook: unknown signal name in {signals!r} ({err})') from None
        self._received = 0
        self._previous = {}

    def _handler(self, signum, frame):
        self._received = signum

    def before_train(self, runner):
        if threading.current_thread() is not threading.main_thread():
            runner.logger.warning('SignalCheckpointHook: not in the main thread, signals are not caught')
            return
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handler)

    def after_train(self, runner):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        received = self._received
        if get_world_size() > 1:
            flag = torch.tensor(float(received), device=next(runner.model.parameters()).device)
            all_reduce(flag, op='max')
            received = int(flag)
        if not received:
            return
        iteration = runner.iter + 1
        filename = f'iter_{iteration}.pth'
        # a mid-epoch checkpoint: `epoch` counts completed epochs, as the loops expect on resume
        path = osp.join(runner.work_dir, filename)
        if runner.message_hub.get_info('last_ckpt') != path:  # CheckpointHook did not just save this iteration
            runner.save_checkpoint(
                runner.work_dir,
                filename,
                save_optimizer=True,
                save_param_scheduler=True,
                meta=dict(epoch=runner.epoch, iter=iteration),
                by_epoch=False,
                backend_args=_checkpoint_backend_args(runner))
        if runner.rank == 0:
            with open(osp.join(runner.work_dir, 'last_checkpoint'), 'w') as f:
                f.write(path)
        err = TrainingInterrupted(received, path, iteration)
        runner.logger.warning(str(err))
        self.after_train(runner)  # the loop ends by exception: after_train is not called
        raise err


def _checkpoint_backend_args(runner):
    """The ``backend_args`` of the runner's CheckpointHook (so this save goes through the same file backend)."""
    from mmengine.hooks import CheckpointHook
    for hook in runner.hooks:
        if isinstance(hook, CheckpointHook):
            return dict(hook.backend_args) if hook.backend_args else None
    return None
