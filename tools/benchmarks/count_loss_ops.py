"""Count the PyTorch operators one training step's losses dispatch (CPU, no GPU needed).

Builds the config's head (``pts_bbox_head`` with its train/test cfg, random weights), random predictions of every
decoder layer at the full sizes (``--layers`` x ``--batch`` x the config's queries, ``--num-gt`` GT boxes per sample,
denoising queries from them) and counts the aten operators ``CmtHead.loss_by_feat`` and its Hungarian matching
dispatch (``TorchDispatchMode``; on a GPU each operator that is not a view is a kernel launch from the host).
Prints the counts and writes ``<out>/loss_op_count.json``; ``--save-losses PATH`` also saves the loss terms (to
compare two revisions on the same inputs: same seeds, same shapes).

    python tools/benchmarks/count_loss_ops.py --out /tmp/ops
"""
import argparse
import json
import os
import os.path as osp
import sys
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = osp.abspath(__file__).rsplit(f'{osp.sep}tools{osp.sep}', 1)[0]  # the repository root
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


class OpCounter(TorchDispatchMode):
    """Counts the aten operators dispatched inside the ``with`` block (by name in ``ops``)."""

    def __init__(self):
        super().__init__()
        self.ops = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default='projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--layers', type=int, default=None, help='decoder layers (default: the config head\'s)')
    p.add_argument('--num-gt', type=int, default=40, help='GT boxes per sample (drives the DN query count)')
    p.add_argument('--save-losses', default=None, help='torch.save the loss terms here')
    p.add_argument('--out', default=None, help='write <out>/loss_op_count.json')
    return p.parse_args(argv)


def build_head(config):
    from mmdet3d.registry import MODELS
    from mmdet3d.utils import register_all_modules
    register_all_modules()
    import projects.mmdet3d_plugin  # noqa: F401
    from projects.mmdet3d_plugin.utils import load_config
    cfg = load_config(config).model
    cfg.pts_bbox_head.update(train_cfg=cfg.train_cfg.pts, test_cfg=cfg.test_cfg.pts)
    torch.manual_seed(0)
    return MODELS.build(cfg.pts_bbox_head)


def random_inputs(head, batch: int, layers: int, num_gt: int):
    """(outs, gt_boxes, gt_labels, dn): random predictions (seed 0) and GT boxes inside the head's range."""
    from projects.mmdet3d_plugin.models.dense_heads.query_denoising import build_dn_queries
    from projects.mmdet3d_plugin.models.synthetic_inputs import random_head_predictions
    g = torch.Generator().manual_seed(0)
    K, Q = head.num_classes, head.num_query
    pc = head.pc_range.float()
    gt_boxes = [
        torch.cat([
            pc[:3] + torch.rand(num_gt, 3, generator=g) *
            (pc[3:] - pc[:3]), 0.5 + 4 * torch.rand(num_gt, 3, generator=g),
            torch.randn(num_gt, 3, generator=g)
        ], 1) for _ in range(batch)
    ]
    gt_labels = [torch.randint(0, K, (num_gt, ), generator=g) for _ in range(batch)]
    torch.manual_seed(1)  # the DN noise
    dn = build_dn_queries(gt_boxes, gt_labels, Q, head.pc_range, K, head.dn_cfg['scalar'], head.dn_cfg['noise_scale'],
                          head.dn_cfg['noise_trans'], head.dn_cfg['split'])
    outs = random_head_predictions(layers, batch, Q, dn.pad_size, K, g)
    return outs, gt_boxes, gt_labels, dn


def main(argv=None) -> dict:
    args = parse_args(argv)
    head = build_head(args.config)
    layers = args.layers or len(head.transformer.decoder.layers)
    outs, gt_boxes, gt_labels, dn = random_inputs(head, args.batch, layers, args.num_gt)
    head.loss_by_feat(outs, gt_boxes, gt_labels, dn)  # first call: one-time work (e.g. moving code weights)
    with OpCounter() as losses_ops:
        losses = head.loss_by_feat(outs, gt_boxes, gt_labels, dn)
    with OpCounter() as matching_ops:
        head._hungarian_matches(outs['cls_scores'], outs['bbox_preds'], gt_boxes, gt_labels)
    result = dict(
        config=args.config,
        layers=layers,
        batch=args.batch,
        queries=head.num_query,
        num_gt=args.num_gt,
        dn_queries=dn.pad_size,
        loss_by_feat_ops=sum(losses_ops.ops.values()),
        hungarian_matches_ops=sum(matching_ops.ops.values()),
        loss_by_feat_by_op=dict(losses_ops.ops.most_common()))
    print(f'{layers} layers, batch {args.batch}, {head.num_query} queries + {dn.pad_size} DN, {args.num_gt} GT/sample: '
          f'loss_by_feat {result["loss_by_feat_ops"]} aten ops, of them _hungarian_matches '
          f'{result["hungarian_matches_ops"]}')
    if args.save_losses:
        torch.save({k: v.detach() for k, v in losses.items()}, args.save_losses)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(osp.join(args.out, 'loss_op_count.json'), 'w') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    main()
