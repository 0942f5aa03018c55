"""The figures the demo prints at its end (tools/run_demo.py): loss at the start and end of training, peak memory,
the attention path that ran, and (GPU) peak memory of one training step per attention path on the same batch."""
import copy
import gc
import json
from typing import Dict, List, Optional, Sequence, Tuple


def loss_ends(scalars_path: str, window: int = 10) -> Dict:
    """Mean ``loss`` of the first and of the last ``window`` training records of an mmengine ``scalars.json``.

    Returns dict(first_iter, last_iter, start, end, window (records averaged), records)."""
    rows = []
    with open(scalars_path) as f:
        for line in f:
            line = line.strip()
            if line:
                rec = json.loads(line)
                if 'loss' in rec and 'iter' in rec:
                    rows.append(rec)
    if not rows:
        raise ValueError(f'{scalars_path} has no training record with a "loss" (JSON lines with "iter" and "loss")')
    n = max(1, min(window, len(rows) // 2 or 1))
    mean = lambda recs: sum(r['loss'] for r in recs) / len(recs)  # noqa: E731
    return dict(
        first_iter=rows[0]['iter'],
        last_iter=rows[-1]['iter'],
        start=mean(rows[:n]),
        end=mean(rows[-n:]),
        window=n,
        records=len(rows))


def peak_memory(summary_path: str, phase: str = 'train') -> Tuple[str, Optional[float]]:
    """(what, MiB) from GPUMemoryHook's ``memory_summary.json``: peak allocated on CUDA, peak process RSS on CPU."""
    with open(summary_path) as f:
        summary = json.load(f)
    records = summary.get('overall', {}).get(phase, {})
    for key, what in (('mem_peak_alloc_mib', 'peak allocated (GPU)'), ('max_rss_mib', 'peak RSS (CPU process)')):
        if key in records:
            return what, float(records[key]['mib'])
    return f'no {phase} memory record in {summary_path}', None


def ran_attention_path(model) -> str:
    """The bias-attention path(s) the model's modules ran, e.g. ``'auto -> exact'`` (from each module's
    ``resolved_mode``, the path of its last forward; its configured ``bias_mode`` when none ran yet)."""
    seen = []
    for module in model.modules():
        mode = getattr(module, 'bias_mode', None)
        if mode is None:
            continue
        if getattr(module, 'use_bias', True) is False:
            label = 'none (use_bias=False)'
        else:
            ran = getattr(module, 'resolved_mode', None)
            label = mode if ran is None or ran == mode else f'{mode} -> {ran}'
        if label not in seen:
            seen.append(label)
    return ', '.join(seen) if seen else 'no bias-attention module'


def format_table(rows: Sequence[Tuple[str, str]], title: str, width: int = 110) -> str:
    """Two aligned columns under a title line; long values wrap within ``width`` characters."""
    import textwrap
    key_w = max(len(k) for k, _ in rows)
    value_w = max(40, width - key_w - 2)
    lines = [title, '-' * len(title)]
    for key, value in rows:
        wrapped = textwrap.wrap(str(value), value_w, break_on_hyphens=False) or ['']
        lines.append(f'{key:<{key_w}}  {wrapped[0]}')
        lines += [' ' * (key_w + 2) + w for w in wrapped[1:]]
    return '\n'.join(lines)


def step_peak_memory(model_cfg, batch, modes: Sequence[str] = ('sdpa', 'triton'), seed: int = 0) -> List[Dict]:
    """Peak CUDA memory allocated by one training step (data preprocessor, forward, loss, backward) of a freshly
    built model per attention path, on the same ``batch`` (a collated dataloader batch). One warm-up step first
    (Triton autotuning allocates scratch memory), then the peak is reset and one step measured.

    Returns [dict(mode, ran, peak_mib, loss)] in ``modes`` order. CUDA only."""
    import torch

    from mmdet3d.registry import MODELS
    if not torch.cuda.is_available():
        raise RuntimeError('step_peak_memory measures CUDA memory; no CUDA device is visible')
    out = []
    for mode in modes:
        cfg = copy.deepcopy(model_cfg)
        cfg.pts_bbox_head.bias_mode = mode
        torch.manual_seed(seed)
        model = MODELS.build(cfg)
        model.init_weights()
        model = model.cuda().train()
        for step in range(2):
            if step == 1:
                model.zero_grad(set_to_none=True)
                gc.collect()
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            data = model.data_preprocessor(batch, training=True)
            losses = model(**data, mode='loss')
            loss, _ = model.parse_losses(losses)  # mmengine BaseModel: the sum of every 'loss' entry
            loss.backward()
            torch.cuda.synchronize()
        out.append(
            dict(
                mode=mode,
                ran=ran_attention_path(model),
                peak_mib=torch.cuda.max_memory_allocated() / 2**20,
                loss=float(loss.detach())))
        del model, data, losses, loss
        gc.collect()
        torch.cuda.empty_cache()
    return out


def memory_line(results: List[Dict], batch_size: int) -> str:
    """One line: each path's peak and the saving of the last against the first."""
    parts = [f'{r["mode"]} {r["peak_mib"]:.0f} MiB' for r in results]
    line = f'peak GPU memory of one training step, same batch of {batch_size}: ' + ', '.join(parts)
    if len(results) >= 2 and results[0]['peak_mib'] > 0:
        saving = 1 - results[-1]['peak_mib'] / results[0]['peak_mib']
        line += f' ({results[-1]["mode"]} uses {saving:.0%} less than {results[0]["mode"]})'
    return line
