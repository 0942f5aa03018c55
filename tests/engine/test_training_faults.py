"""Faults during training (issue "fail fast, lose nothing", rows 2 and 3): a non-finite loss stops the run before
a checkpoint of it is written; SIGTERM saves a checkpoint after the current iteration and the resumed run
repeats the uninterrupted one, also from the middle of an epoch."""
import json
import math
import os
import os.path as osp
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.logging import MessageHub
from reliability_helpers import ROOT, IndexDataset, ToyModel, config_file, iteration_config, load_config, toy_runner

from projects.mmdet3d_plugin.engine import NonFiniteLossError, NonFiniteLossHook, TrainingInterrupted


def _scalars(work_dir):
    """{iteration: record} of every run in ``work_dir`` (later runs override earlier ones)."""
    rows = {}
    for run in sorted(d for d in os.listdir(work_dir) if osp.isdir(osp.join(work_dir, d, 'vis_data'))):
        path = osp.join(work_dir, run, 'vis_data', 'scalars.json')
        if osp.isfile(path):
            for line in open(path):
                rec = json.loads(line)
                if 'loss' in rec:
                    rows[rec['step']] = rec
    return rows


# ---------------------------------------------------------------- row 2: NaN
@pytest.mark.slow
def test_nan_loss_stops_before_checkpoint(synthetic_root, tmp_path, capsys):
    """The demo model with lr 1e30: iteration 1 is finite and checkpointed, its AdamW step (size ~lr) makes
    iteration 2 overflow. The run stops there: exit 3, a message with the iteration, the LR and the last good
    checkpoint, no iter_2.pth, and the logged loss is NaN/inf (not nan_to_num's 0)."""
    from tools import train
    cfg = iteration_config(load_config(synthetic_root), max_iters=4, ckpt_interval=1)
    cfg.optim_wrapper.optimizer.lr = 1e30
    # the visualizer is a per-process singleton by name: another in-process Runner's would keep its save_dir
    cfg.visualizer.name = f'visualizer_{tmp_path.name}'
    wd = tmp_path / 'wd'
    code = train.main([config_file(tmp_path, cfg), '--work-dir', str(wd)])
    err = capsys.readouterr().err
    assert code == 3, err[-3000:]
    assert 'training stopped at iteration 2' in err and 'lr=1e+30' in err, err
    assert f'Last good checkpoint: {wd / "iter_1.pth"}' in err, err
    assert osp.isfile(wd / 'iter_1.pth') and not osp.exists(wd / 'iter_2.pth')
    rows = _scalars(str(wd))
    assert math.isfinite(rows[1]['loss']) and not math.isfinite(rows[2]['loss']), rows


class _FakeScaler:

    def __init__(self):
        self.scale = 2.0**16

    def get_scale(self):
        return self.scale

    def is_enabled(self):
        return True


def _fake_runner(tmp_path, scaler=None):
    hub = MessageHub.get_instance(f'nonfinite-{time.time()}')
    optim = SimpleNamespace(get_lr=lambda: {'lr': [0.25]}, loss_scaler=scaler)
    return SimpleNamespace(
        optim_wrapper=optim, message_hub=hub, iter=6, epoch=0, work_dir=str(tmp_path), model=torch.nn.Linear(1, 1))


def _step(hook, runner, loss, grad_norm, scaler=None, skipped=False):
    hook.before_train_iter(runner, 0)
    if skipped:
        scaler.scale /= 2
    runner.message_hub.update_scalar('train/grad_norm', grad_norm)
    hook.after_train_iter(runner, 0, outputs=dict(loss=torch.tensor(loss), loss_cls=torch.tensor(loss)))


def test_non_finite_hook_checks_loss_and_grad_norm(tmp_path):
    runner = _fake_runner(tmp_path)
    hook = NonFiniteLossHook()
    _step(hook, runner, 1.5, 3.0)  # finite: nothing happens
    with pytest.raises(NonFiniteLossError, match=r'iteration 7 .*grad_norm=inf.*lr=0\.25'):
        _step(hook, runner, 1.5, float('inf'))
    with pytest.raises(NonFiniteLossError, match=r'loss=nan, loss_cls=nan'):
        _step(hook, runner, float('nan'), 3.0)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_4.pth'))
    with pytest.raises(NonFiniteLossError, match=f'--resume {tmp_path / "iter_4.pth"}'):
        _step(hook, runner, float('inf'), 3.0)


def test_amp_skipped_steps_are_tolerated_up_to_a_limit(tmp_path):
    scaler = _FakeScaler()
    runner = _fake_runner(tmp_path, scaler)
    hook = NonFiniteLossHook(max_amp_skips=3)
    for _ in range(3):  # the scaler lowered its scale: an overflow it handled, weights untouched
        _step(hook, runner, float('nan'), float('inf'), scaler, skipped=True)
    _step(hook, runner, 1.0, 2.0, scaler)  # a good step resets the count
    for _ in range(3):
        _step(hook, runner, 1.0, float('inf'), scaler, skipped=True)
    with pytest.raises(NonFiniteLossError, match='skipped 4 consecutive steps'):
        _step(hook, runner, 1.0, float('inf'), scaler, skipped=True)
    with pytest.raises(NonFiniteLossError, match='grad_norm=nan'):  # the scaler did not skip: a real NaN
        _step(NonFiniteLossHook(), runner, 1.0, float('nan'), scaler)


# ---------------------------------------------------------------- row 3: SIGTERM, mid-epoch resume
class _SignalAt(Hook):
    """Sends ``signum`` to this process after iteration ``at`` (before SignalCheckpointHook runs)."""
    priority = 'HIGHEST'

    def __init__(self, at, signum=signal.SIGTERM):
        self.at, self.signum = at, signum

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.at:
            os.kill(os.getpid(), self.signum)


@pytest.mark.parametrize('signum,at', [(signal.SIGTERM, 8), (signal.SIGUSR1, 10)])
def test_signal_mid_epoch_then_resume_repeats_the_run(tmp_path, signum, at):
    """Epoch-based loop, 5 batches per epoch: a signal after iteration 8 (epoch 2, batch 3) or 10 (its last
    batch, before the epoch's end hooks) saves iter_<at>.pth; the resumed run trains exactly the batches the
    uninterrupted run trained after it, ends with the same weight, and writes the epoch checkpoints."""
    loop = dict(type='ResumableEpochBasedTrainLoop', max_epochs=3)
    epoch_ckpt = dict(type='CheckpointHook', interval=1, by_epoch=True)
    full_seen, split_seen, resumed_seen = [], [], []
    full = toy_runner(tmp_path / 'full', ToyModel(full_seen), IndexDataset(10), loop)
    full.train()
    assert len(full_seen) == 15
    previous = signal.getsignal(signum)
    split = toy_runner(
        tmp_path / 'split',
        ToyModel(split_seen),
        IndexDataset(10),
        loop,
        checkpoint=epoch_ckpt,
        custom_hooks=[dict(type='SignalCheckpointHook'), _SignalAt(at, signum)])
    with pytest.raises(TrainingInterrupted) as exc:
        split.train()
    assert exc.value.iteration == at and exc.value.checkpoint == str(tmp_path / 'split' / f'iter_{at}.pth')
    assert signal.getsignal(signum) == previous  # handlers restored
    assert (tmp_path / 'split' / 'last_checkpoint').read_text() == exc.value.checkpoint
    assert sorted(p for p in os.listdir(tmp_path / 'split') if p.endswith('.pth')) == ['epoch_1.pth', f'iter_{at}.pth']
    resumed = toy_runner(
        tmp_path / 'split',
        ToyModel(resumed_seen),
        IndexDataset(10),
        loop,
        resume=True,
        checkpoint=epoch_ckpt,
        custom_hooks=[dict(type='SignalCheckpointHook')])
    resumed.train()
    assert split_seen == full_seen[:at]
    assert resumed_seen == full_seen[at:], (resumed_seen, full_seen)
    assert resumed.model.w.item() == full.model.w.item()
    assert {'epoch_2.pth', 'epoch_3.pth'} <= set(os.listdir(tmp_path / 'split'))


def _train_proc(cfg_file, work_dir, *extra):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''), CUDA_VISIBLE_DEVICES='')
    return subprocess.Popen([sys.executable, 'tools/train.py', cfg_file, '--work-dir',
                             str(work_dir), *extra],
                            cwd=ROOT,
                            env=env,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.slow
def test_sigterm_subprocess_saves_and_resume_is_exact(synthetic_root, tmp_path):
    """tools/train.py on the demo config (no seed in the config), SIGTERM after iteration >= 2 of 6: a
    checkpoint of the last finished iteration, exit 143, a log line; `--resume` finishes the run with the losses
    of an uninterrupted run with the stored seed."""
    max_iters = 6
    cfg = iteration_config(load_config(synthetic_root), max_iters=max_iters, ckpt_interval=100)
    assert cfg.get('randomness') is None
    cfg_file = config_file(tmp_path, cfg)
    wd = tmp_path / 'split'
    proc = _train_proc(cfg_file, wd)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if osp.isdir(wd) and len(_scalars(str(wd))) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, err[-3000:]
    stopped = max(_scalars(str(wd)))
    assert 2 <= stopped < max_iters
    ckpt = str(wd / f'iter_{stopped}.pth')
    assert f'SIGTERM received: saved {ckpt} after iteration {stopped}' in err
    assert (wd / 'last_checkpoint').read_text() == ckpt
    seed = torch.load(ckpt, map_location='cpu', weights_only=False)['meta']['seed']

    resume = _train_proc(cfg_file, wd, '--resume')
    _, err = resume.communicate(timeout=600)
    assert resume.returncode == 0, err[-3000:]
    ref = _train_proc(cfg_file, tmp_path / 'full', '--cfg-options', f'randomness.seed={seed}')
    _, err = ref.communicate(timeout=600)
    assert ref.returncode == 0, err[-3000:]
    got, want = _scalars(str(wd)), _scalars(str(tmp_path / 'full'))
    assert sorted(got) == list(range(1, max_iters + 1))
    for it in range(stopped + 1, max_iters + 1):
        assert got[it]['loss'] == pytest.approx(want[it]['loss'], rel=1e-4, abs=1e-5), it
    assert len({round(want[it]['loss'], 4) for it in range(1, max_iters + 1)}) > 3  # not a flat curve
