"""A tiny mmengine Runner whose toy model allocates known buffers.

Shared by the GPUMemoryHook tests and their distributed worker script.
"""
import json
import os.path as osp
import zlib

import torch
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

import projects.mmdet3d_plugin.engine  # noqa: F401  registers GPUMemoryHook
from projects.mmdet3d_plugin.utils.scalar_logs import find_scalar_files

MIB = 2**20


class FakeBiasAttention(nn.Module):
    """Stands in for the plugin's bias-attention module (same attributes)."""

    def __init__(self, bias_mode: str, use_bias: bool = True):
        super().__init__()
        self.bias_mode = bias_mode
        self.use_bias = use_bias


class ToyData(Dataset):

    def __init__(self, n: int = 64):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = torch.randn(n, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], labels=self.y[i])


class ToyModel(BaseModel):
    """Linear regression that allocates buffers at chosen forward calls.

    Args:
        keep (dict): {call: MiB} allocated and kept alive from that call on.
        transient (dict): {call: MiB} allocated (pages touched) and freed
            within that call.
    """

    def __init__(self, keep=None, transient=None, bias_mode='exact'):
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.attn = FakeBiasAttention(bias_mode)
        self.keep, self.transient = keep or {}, transient or {}
        self.calls = 0
        self.kept = []

    def _alloc(self, mib):
        # ones() writes every page, so the memory is resident, not reserved.
        return torch.ones(mib * MIB // 4, device=self.linear.weight.device)

    def forward(self, inputs, labels=None, mode='tensor'):
        self.calls += 1
        if self.calls in self.keep:
            self.kept.append(self._alloc(self.keep[self.calls]))
        if self.calls in self.transient:
            buf = self._alloc(self.transient[self.calls])
            assert float(buf[-1]) == 1.0
            del buf
        out = self.linear(inputs).squeeze(-1)
        if mode == 'loss':
            return dict(loss=((out - labels)**2).mean())
        return out


class ToyMSE(BaseMetric):
    """Mean squared error of the toy regression (for a validation loop)."""

    def process(self, data_batch, data_samples):
        # data_samples: the model's predictions, one 0-d tensor per sample
        pred = torch.stack(list(data_samples))
        self.results.append(float(((pred - data_batch['labels'])**2).mean()))

    def compute_metrics(self, results):
        return dict(mse=sum(results) / len(results))


def _loader(n):
    return dict(
        dataset=ToyData(n),
        sampler=dict(type='DefaultSampler', shuffle=False),
        batch_size=2,
        num_workers=0,
        collate_fn=dict(type='default_collate'))


def train_toy(work_dir,
              model,
              max_iters=10,
              interval=2,
              launcher='none',
              model_wrapper_cfg=None,
              val_interval=None,
              val_size=8,
              tensorboard=False,
              **hook_kwargs):
    """Train ``model`` for ``max_iters`` (batch 2) with GPUMemoryHook.

    With ``val_interval`` a validation loop over ``val_size`` samples runs
    every ``val_interval`` iterations. ``tensorboard`` adds mmengine's
    TensorboardVisBackend next to the LocalVisBackend (scalars.json).
    """
    backends = [dict(type='LocalVisBackend')]
    if tensorboard:
        backends.append(dict(type='TensorboardVisBackend'))
    val = dict(val_dataloader=_loader(val_size), val_cfg=dict(), val_evaluator=[ToyMSE()]) if val_interval else {}
    runner = Runner(
        model=model,
        work_dir=str(work_dir),
        train_dataloader=_loader(64),
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=val_interval or max_iters + 1),
        log_processor=dict(by_epoch=False),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=interval), checkpoint=None),
        custom_hooks=[dict(type='GPUMemoryHook', **hook_kwargs)],
        default_scope='mmdet3d',
        env_cfg=dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo')),
        launcher=launcher,
        # Runner reads the DDP wrapper config from ``cfg`` only
        cfg=dict(model_wrapper_cfg=model_wrapper_cfg) if model_wrapper_cfg else None,
        visualizer=dict(type='Visualizer', vis_backends=backends),
        log_level='INFO',
        # mmengine names the logger/visualizer instances after the experiment: a unique name keeps two runs
        # started within the same second (same timestamp) from sharing the first one's log files; named
        # after the work dir so that all ranks of a distributed run agree
        experiment_name=f'toy_{zlib.crc32(osp.abspath(str(work_dir)).encode()):08x}',
        **val)
    runner.train()
    return runner


def read_tensorboard(work_dir):
    """{tag: {step: value}} of the newest run's TensorBoard event file."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    run_dir = find_scalar_files(work_dir)[0].rsplit(osp.sep, 2)[0]
    acc = EventAccumulator(osp.join(run_dir, 'vis_data'))
    acc.Reload()
    return {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()['scalars']}


def read_outputs(work_dir):
    """(scalars by iter, log text, summary dict) of the newest run."""
    run_dir = find_scalar_files(work_dir)[0].rsplit(osp.sep, 2)[0]
    timestamp = osp.basename(run_dir)
    with open(osp.join(run_dir, 'vis_data', 'scalars.json')) as f:
        records = [json.loads(line) for line in f]
    # training records carry 'iter'; validation records do not
    scalars = {r['iter']: r for r in records if 'iter' in r}
    scalars['val'] = [r for r in records if 'iter' not in r]
    with open(osp.join(run_dir, f'{timestamp}.log')) as f:
        log = f.read()
    with open(osp.join(work_dir, 'memory_summary.json')) as f:
        summary = json.load(f)
    return scalars, log, summary
