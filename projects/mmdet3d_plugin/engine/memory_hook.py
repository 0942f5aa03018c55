"""GPUMemoryHook: log real memory figures per logging interval and per rank.

On CUDA each logging interval puts into ``runner.message_hub`` (so LoggerHook
writes them to the text log, ``vis_data/scalars.json`` and TensorBoard):

* ``train/mem_peak_alloc_mib``    peak allocated by tensors since the last
  interval (MiB, ``torch.cuda.max_memory_allocated``);
* ``train/mem_peak_reserved_mib`` peak reserved by the caching allocator;
* ``train/mem_alloc_mib``         currently allocated;
* ``train/mem_device_used_mib``   used memory of the whole device (NVML when
  pynvml is installed, else ``cudaMemGetInfo``).

On CPU it logs the process resident set size instead: ``train/rss_mib``
(current) and ``train/max_rss_mib`` (peak since the last interval where
``/proc/self/clear_refs`` allows resetting it, else the process-lifetime peak;
the summary says which), and the summary's ``device`` reads
``'cpu (process RSS)'``.

In a distributed run the figures of every rank are gathered at each interval
and logged as ``train/<name>_rank<r>``. Validation and test loops get
``val/<name>`` / ``test/<name>`` peaks over the whole loop in their epoch line.
At ``after_train`` (and after a stand-alone val/test run) the hook writes
``<work_dir>/memory_summary.json`` with each rank's peaks and the iteration and
epoch where they occurred, the device name and the attention ``bias_mode`` (the
path the modules ran, their ``resolved_mode``: 'triton' or 'exact' for 'auto';
see ``attention_info``), the sparse-convolution backend the model was built
with (``sparse_conv_backend``: 'spconv <version>' or 'mmcv', None without sparse
convolutions; details under ``sparse_conv``; see ``sparse_backend``), and prints
it through the runner logger. Train start (and a stand-alone val/test start)
logs the backend and the attention mode.
"""
import json
import os.path as osp
import socket
from typing import Dict, List, Optional

import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook, LoggerHook

from mmdet3d.registry import HOOKS
from .attention_info import find_bias_attention, summarize_bias_mode
from .memory_probe import make_memory_probe
from .sparse_backend import sparse_conv_backend

PLACE_TOL_MIB = 1.0  # see GPUMemoryHook._read_peaks


@HOOKS.register_module()
class GPUMemoryHook(Hook):
    """Log peak/current memory each logging interval; summarize at the end.

    Args:
        interval (int, optional): logging interval in iterations. ``None``
            (default) takes the runner's LoggerHook interval so the figures
            land on the same log lines.
        gather_ranks (bool): in a distributed run, gather every rank's figures
            at each interval and log them as ``<name>_rank<r>`` (one
            ``all_gather_object`` of a few floats per interval). If False each
            rank logs only its own figures under the plain names.
        summary_file (str): file name of the summary inside ``work_dir``.
    """

    # Before LoggerHook (BELOW_NORMAL): its LogProcessor resets the CUDA peak
    # statistics when it reads them for its own ``memory`` field.
    priority = 'NORMAL'

    def __init__(self,
                 interval: Optional[int] = None,
                 gather_ranks: bool = True,
                 summary_file: str = 'memory_summary.json'):
        if interval is not None and (not isinstance(interval, int) or interval < 1):
            raise ValueError('GPUMemoryHook: `interval` must be a positive '
                             f'int or None (use the LoggerHook interval), '
                             f'got {interval!r}')
        self.interval = interval
        self.gather_ranks = gather_ranks
        self.summary_file = summary_file
        self.probe = None
        self._interval = interval or 10
        self._ignore_last = True
        self._windows: Dict[str, Dict[str, float]] = {}
        self._peaks: Dict[str, Dict[str, Dict]] = {}
        self._reset_pending = False
        self._in_train = False
        self.attention_modules: List[Dict] = []
        self.bias_mode: Optional[str] = None
        self.sparse_conv: Dict = {}

    # ------------------------------------------------------------ set-up
    def before_run(self, runner) -> None:
        self.probe = make_memory_probe(_model_device(runner.model))
        logger_hooks = [h for h in runner.hooks if isinstance(h, LoggerHook)]
        if logger_hooks:
            if self.interval is None:
                self._interval = logger_hooks[0].interval
            self._ignore_last = logger_hooks[0].ignore_last
        self._peaks = {}
        self._windows = {}
        self._start_window('train')
        runner.logger.info(f'GPUMemoryHook: logging {self.probe.description} on '
                           f'{self.probe.device_name!r} every {self._interval} iterations; '
                           f'keys {self._key_names()} (peaks {self.probe.peak_scope})')

    def _key_names(self) -> List[str]:
        names = list(self.probe.peak_keys) + list(self.probe.current())
        if self._distributed():
            return [f'{n}_rank<r>' for n in names]
        return names

    def _distributed(self) -> bool:
        return self.gather_ranks and get_world_size() > 1

    def _record_model_info(self, runner) -> None:
        self.attention_modules = find_bias_attention(runner.model)
        self.bias_mode = summarize_bias_mode(self.attention_modules)
        runner.message_hub.update_info('bias_mode', self.bias_mode)
        self.sparse_conv = sparse_conv_backend(runner.model)
        runner.message_hub.update_info('sparse_conv_backend', self.sparse_conv['backend'])

    def _log_model_paths(self, runner) -> None:
        sc = self.sparse_conv
        runner.logger.info(f'GPUMemoryHook: sparse-conv backend = {sc["backend"]} '
                           f'({sc["num_sparse_convs"]} sparse convolutions' +
                           (f', e.g. {sc["example"]}' if sc['example'] else '') +
                           f'; mmdet3d IS_SPCONV2_AVAILABLE={sc["import_flag"]})')
        runner.logger.info(f'GPUMemoryHook: attention bias_mode = {self.bias_mode} '
                           f'({len(self.attention_modules)} bias-attention modules' +
                           (f', e.g. {self.attention_modules[0]["name"]}' if self.attention_modules else '') + ')')

    # ------------------------------------------------------------ windows
    def _start_window(self, phase: str) -> None:
        """Empty ``phase``'s window and reset the probe's peaks."""
        self._windows[phase] = {}
        self.probe.reset_peaks()
        self._reset_pending = False

    def _read_peaks(self, runner, phase: str, iteration: int) -> None:
        """Fold the probe's peaks into the window and the run's records.

        A record keeps the run's peak (``mib``) and where it was reached
        (``iter``/``epoch``): the place moves only when the peak rises by more
        than ``PLACE_TOL_MIB`` over the value at the recorded place, so small
        later creep (allocator noise) does not hide the iteration that made
        the peak; the recorded place is within that tolerance of the peak.
        """
        records = self._peaks.setdefault(phase, {})
        window = self._windows.setdefault(phase, {})
        for key, value in self.probe.peaks().items():
            window[key] = max(value, window.get(key, value))
            rec = records.get(key)
            if rec is None or value > rec['mib_at_iter'] + PLACE_TOL_MIB:
                rec = records[key] = dict(
                    mib=0.0,
                    mib_at_iter=round(value, 3),
                    iter=iteration,
                    epoch=_train_progress(runner)[0] + (1 if phase == 'train' else 0))
                if phase != 'train':
                    rec['train_iters_done'] = _train_progress(runner)[1]
            rec['mib'] = max(rec['mib'], round(value, 3))

    def _report(self, runner, phase: str) -> None:
        """Put the window's peaks and the current values in the message hub."""
        values = dict(self._windows.get(phase, {}))
        values.update(self.probe.current())
        values = {k: round(v, 3) for k, v in values.items()}
        if self._distributed():
            for rank, rank_values in enumerate(all_gather_object(values)):
                for key, value in rank_values.items():
                    runner.message_hub.update_scalar(f'{phase}/{key}_rank{rank}', value)
        else:
            for key, value in values.items():
                runner.message_hub.update_scalar(f'{phase}/{key}', value)
        self._windows[phase] = {}
        # Reset the probe's peaks at the next train iteration, i.e. after
        # LoggerHook has read them for its own ``memory`` field.
        self._reset_pending = True

    # ------------------------------------------------------------ train
    def before_train(self, runner) -> None:
        self._in_train = True
        self._record_model_info(runner)
        self._log_model_paths(runner)

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if self._reset_pending:
            self.probe.reset_peaks()
            self._reset_pending = False

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._read_peaks(runner, 'train', runner.iter + 1)
        if self._is_log_iter(runner, batch_idx):
            self._report(runner, 'train')

    def _is_log_iter(self, runner, batch_idx: int) -> bool:
        """The same condition as LoggerHook.after_train_iter."""
        if self.every_n_inner_iters(batch_idx, self._interval):
            return True
        return (not self._ignore_last and self.end_of_epoch(runner.train_dataloader, batch_idx))

    def after_train(self, runner) -> None:
        self._in_train = False
        self._record_model_info(runner)  # an 'auto' module may have resolved
        self.write_summary(runner)

    # ------------------------------------------------------------ val/test
    def before_val(self, runner) -> None:
        if not self._in_train:  # stand-alone runner.val()
            self._record_model_info(runner)
            self._log_model_paths(runner)

    def before_test(self, runner) -> None:
        self._record_model_info(runner)
        self._log_model_paths(runner)

    def before_val_epoch(self, runner) -> None:
        self._start_window('val')

    def before_test_epoch(self, runner) -> None:
        self._start_window('test')

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._read_peaks(runner, 'val', batch_idx + 1)

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._read_peaks(runner, 'test', batch_idx + 1)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._report(runner, 'val')

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._report(runner, 'test')

    def after_val(self, runner) -> None:
        if not self._in_train:  # stand-alone runner.val()
            self._record_model_info(runner)
            self.write_summary(runner)

    def after_test(self, runner) -> None:
        self._record_model_info(runner)
        self.write_summary(runner)

    # ------------------------------------------------------------ summary
    def local_summary(self) -> Dict:
        """This rank's peaks: ``phases[phase][key] = {mib, iter, epoch}``."""
        return dict(
            rank=get_rank(),
            host=socket.gethostname(),
            device=str(self.probe.device),
            device_name=self.probe.device_name,
            phases=self._peaks,
            final={
                k: round(v, 3)
                for k, v in self.probe.current().items()
            })

    def build_summary(self) -> Dict:
        """All ranks' peaks (a collective when distributed) and their max."""
        local = self.local_summary()
        ranks = all_gather_object(local) if get_world_size() > 1 else [local]
        overall: Dict[str, Dict[str, Dict]] = {}
        for rank_summary in ranks:
            for phase, records in rank_summary['phases'].items():
                for key, rec in records.items():
                    best = overall.setdefault(phase, {}).get(key)
                    if best is None or rec['mib'] > best['mib']:
                        overall[phase][key] = dict(rec, rank=rank_summary['rank'])
        summary = dict(
            device=self.probe.description,
            peak_scope=self.probe.peak_scope,
            bias_mode=self.bias_mode,
            attention_modules=self.attention_modules,
            sparse_conv_backend=self.sparse_conv.get('backend'),
            sparse_conv=self.sparse_conv,
            world_size=len(ranks),
            overall=overall,
            ranks=ranks)
        if self.probe.kind == 'cuda':
            summary['device_used_source'] = self.probe.device_used_source
        return summary

    def write_summary(self, runner) -> Dict:
        """Write ``work_dir/<summary_file>`` (rank 0) and log it."""
        summary = self.build_summary()
        if get_rank() == 0:
            path = osp.join(runner.work_dir, self.summary_file)
            with open(path, 'w') as f:
                json.dump(summary, f, indent=2)
            runner.logger.info('GPUMemoryHook: memory summary written to '
                               f'{path}\n' + json.dumps(summary, indent=2))
        return summary


def _train_progress(runner):
    """(epoch, iter) of the train loop, (0, 0) when it was never built: ``runner.epoch`` would build it, and
    with it the training set (a stand-alone test run must not need training data)."""
    from mmengine.runner import BaseLoop
    loop = getattr(runner, '_train_loop', None)
    if isinstance(loop, BaseLoop):
        return loop.epoch, loop.iter
    return 0, 0


def _model_device(model: torch.nn.Module) -> Optional[torch.device]:
    """Device of the model's first parameter or buffer (None if none)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return None
