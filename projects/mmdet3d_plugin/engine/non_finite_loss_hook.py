"""Stop training at the first non-finite loss or gradient norm, before a checkpoint is written.

Without it a diverged run goes on for the whole schedule: the optimizer turns the NaN gradients into NaN
weights, every later loss is NaN and every later checkpoint is useless. The hook runs after LoggerHook and
before CheckpointHook, so the iteration that diverged is still logged and no checkpoint of it is saved.

AMP: a step that the dynamic loss scaler skipped (its scale went down: fp16 overflow, weights untouched) is
normal and only counted; ``max_amp_skips`` consecutive skips stop the run too (the scale has then halved that
many times, which is no longer a transient overflow).
"""
import math
import os.path as osp
from typing import Dict, Optional

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook

from mmdet3d.registry import HOOKS


class NonFiniteLossError(RuntimeError):
    """Training produced a non-finite loss or gradient norm."""


def _to_float(value) -> float:
    if isinstance(value, torch.Tensor):
        return float(value.detach().float().mean())
    return float(value)


def _loss_scales(runner) -> Optional[Dict[str, float]]:
    """{wrapper name: loss scale} of every AmpOptimWrapper with a dynamic scaler, else None."""
    wrapper = runner.optim_wrapper
    wrappers = dict(wrapper.items()) if hasattr(wrapper, 'items') else {'': wrapper}
    scales = {}
    for name, w in wrappers.items():
        scaler = getattr(w, 'loss_scaler', None)
        if scaler is not None and hasattr(scaler, 'get_scale') and scaler.is_enabled():
            scales[name] = float(scaler.get_scale())
    return scales or None


def last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint named in ``work_dir/last_checkpoint`` (mmengine's CheckpointHook), if any."""
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        name = f.read().strip()
    return name or None


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Raise :class:`NonFiniteLossError` at the first iteration whose loss or ``grad_norm`` is not finite.

    Checked: every scalar of the train step's outputs whose name contains 'loss' and the
    ``train/grad_norm`` the optimizer wrapper logged this iteration (present when ``clip_grad`` is set).
    In a distributed run the verdict is all-reduced (one scalar per iteration), so every rank stops at the
    same iteration instead of the healthy ones waiting in the next collective.

    Args:
        max_amp_skips (int): consecutive AMP-skipped steps tolerated before stopping.
    """
    # after LoggerHook (BELOW_NORMAL) so the bad iteration is logged, before CheckpointHook (VERY_LOW)
    priority = 'LOW'

    def __init__(self, max_amp_skips: int = 32):
        if not isinstance(max_amp_skips, int) or max_amp_skips < 1:
            raise ValueError(f'NonFiniteLossHook: max_amp_skips must be a positive int, got {max_amp_skips!r}')
        self.max_amp_skips = max_amp_skips
        self._scales_before = None
        self._amp_skips = 0

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self._scales_before = _loss_scales(runner)

    def _grad_norm(self, runner) -> Optional[float]:
        hub = runner.message_hub
        if 'train/grad_norm' not in hub.log_scalars:
            return None
        return float(hub.get_scalar('train/grad_norm').current())

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        values = {k: _to_float(v) for k, v in (outputs or {}).items() if 'loss' in k}
        grad_norm = self._grad_norm(runner)
        if grad_norm is not None:
            values['grad_norm'] = grad_norm
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}

        skipped = False
        if self._scales_before is not None:
            after = _loss_scales(runner) or {}
            skipped = any(after.get(k, v) < v for k, v in self._scales_before.items())
        if skipped:
            self._amp_skips += 1
            if self._amp_skips <= self.max_amp_skips:
                bad = {}
        else:
            self._amp_skips = 0

        flag = 1.0 if bad else 0.0
        if get_world_size() > 1:
            device = next(runner.model.parameters()).device
            flag_t = torch.tensor(flag, device=device)
            all_reduce(flag_t, op='max')
            flag = float(flag_t)
        if flag == 0.0:
            return
        raise NonFiniteLossError(self._message(runner, bad, values))

    def _message(self, runner, bad: Dict[str, float], values: Dict[str, float]) -> str:
        iteration = runner.iter + 1
        try:
            lrs = runner.optim_wrapper.get_lr()
            lr = ', '.join(f'{k}={v[0]:.3g}' if len(v) == 1 else f'{k}={v}' for k, v in lrs.items())
        except Exception:  # noqa: BLE001  (the message must not fail)
            lr = 'unknown'
        ckpt = last_checkpoint(runner.work_dir)
        if not bad:
            what = 'another rank reported a non-finite loss or gradient norm'
        elif self._amp_skips > self.max_amp_skips:
            what = (f'the AMP loss scaler skipped {self._amp_skips} consecutive steps '
                    f'({", ".join(f"{k}={v:.4g}" for k, v in bad.items())})')
        else:
            what = 'non-finite ' + ', '.join(f'{k}={v}' for k, v in bad.items())
        return (f'training stopped at iteration {iteration} (epoch {runner.epoch + 1}): {what}; lr {lr}. '
                f'No checkpoint was written for this iteration. Last good checkpoint: '
                f'{ckpt or "none (no checkpoint saved yet)"}. Lower the learning rate (optim_wrapper.optimizer.lr) '
                f'or check the data, then restart' + (f' with --resume {ckpt}' if ckpt else '') + '.')
