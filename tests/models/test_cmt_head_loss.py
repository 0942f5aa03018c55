"""CmtHead.loss_by_feat against a direct fp64 evaluation of CMT's loss formula.

The reference assigns each (layer, sample) pair on its own with the assigner's ``assign`` (itself checked against
brute force in test_cmt_task_modules.py), builds the targets query by query, and evaluates the sigmoid focal loss
and the weighted L1 in fp64 with CMT's normalisers: (positives + 0.1 x negatives) and positives for the matching
queries, ``num * pi/6 * split^3`` and the valid count for the DN queries. Fresh random predictions and GT every
run, a sample without GT and a zero-size GT box (log(0) = -inf target, left out of L1) included.
"""
import math

import torch
import torch.nn.functional as F
from cmt_test_utils import DEMO, build_model

from projects.mmdet3d_plugin.models.dense_heads.query_denoising import build_dn_queries
from projects.mmdet3d_plugin.models.synthetic_inputs import random_head_predictions
from projects.mmdet3d_plugin.models.task_modules.box_codec import encode_boxes


def random_gt(n: int, pc: torch.Tensor, num_classes: int, gen: torch.Generator):
    """n gravity-centre boxes (n, 9) inside the range, sizes 0.5-5 m, and labels (n,)."""
    centre = pc[:3] + torch.rand(n, 3, generator=gen) * (pc[3:] - pc[:3])
    size = 0.5 + 4.5 * torch.rand(n, 3, generator=gen)
    yaw_vel = torch.randn(n, 3, generator=gen)
    return torch.cat([centre, size, yaw_vel], 1), torch.randint(0, num_classes, (n, ), generator=gen)


def focal_sum(logits: torch.Tensor, labels: torch.Tensor, num_classes: int, gamma: float, alpha: float):
    """Sum over all elements of the sigmoid focal loss (labels == num_classes: background), fp64."""
    x = logits.double()
    t = F.one_hot(labels, num_classes + 1)[:, :num_classes].double()
    p = x.sigmoid()
    pt = (1 - p) * t + p * (1 - t)
    weight = (alpha * t + (1 - alpha) * (1 - t)) * pt.pow(gamma)
    return (F.binary_cross_entropy_with_logits(x, t, reduction='none') * weight).sum()


def l1_sum(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor):
    """Weighted L1 summed over the rows whose target is finite, fp64."""
    finite = torch.isfinite(target).all(-1)
    return ((pred.double() - target.double()).abs() * weight.double())[finite].sum()


def reference_losses(head, outs, gt_boxes, gt_labels, dn):
    K, bg = head.num_classes, head.bg_cls_weight
    lc, lb = head.loss_cls, head.loss_bbox
    cw = head.code_weights
    L, B, Q = outs['cls_scores'].shape[:3]
    ref = {}
    for layer in range(L):
        prefix = '' if layer == L - 1 else f'd{layer}.'
        cls, bbox = outs['cls_scores'][layer], outs['bbox_preds'][layer]
        labels = torch.full((B * Q, ), K, dtype=torch.long)
        targets = torch.zeros(B * Q, 10)
        weights = torch.zeros(B * Q, 10)
        for b in range(B):
            gt_inds = head.assigner.assign(bbox[b], cls[b], gt_boxes[b], gt_labels[b]).gt_inds
            for q in range(Q):
                g = int(gt_inds[q]) - 1
                if g >= 0:
                    labels[b * Q + q] = gt_labels[b][g]
                    targets[b * Q + q] = encode_boxes(gt_boxes[b][g:g + 1])[0]
                    weights[b * Q + q] = cw
        num_pos = float((labels < K).sum())
        cls_avg = max(num_pos + (B * Q - num_pos) * bg, 1.0)
        ref[prefix +
            'loss_cls'] = lc.loss_weight * focal_sum(cls.flatten(0, 1), labels, K, lc.gamma, lc.alpha) / cls_avg
        ref[prefix + 'loss_bbox'] = lb.loss_weight * l1_sum(bbox.flatten(0, 1), targets, weights) / max(num_pos, 1.0)
        valid = dn.valid
        num = float(valid.sum())
        dn_labels, dn_targets = dn.labels[valid], encode_boxes(dn.boxes[valid])
        w = head.dn_cfg['dn_weight']
        dn_cls_avg = max(num * math.pi / 6 * head.dn_cfg['split']**3, 1.0)
        ref[prefix + 'dn_loss_cls'] = w * lc.loss_weight * focal_sum(outs['dn_cls_scores'][layer][valid], dn_labels, K,
                                                                     lc.gamma, lc.alpha) / dn_cls_avg
        ref[prefix + 'dn_loss_bbox'] = w * lb.loss_weight * l1_sum(outs['dn_bbox_preds'][layer][valid], dn_targets,
                                                                   cw.expand_as(dn_targets)) / max(num, 1.0)
    return ref


def random_loss_inputs(head, seed: int):
    """(outs, gt_boxes, gt_labels, dn) of 3 samples (5, 0 and 3 GT boxes, one of zero size): random predictions of
    every decoder layer, sample 2's boxes near its GT."""
    gen = torch.Generator().manual_seed(seed)
    K, Q, L, B = head.num_classes, head.num_query, len(head.transformer.decoder.layers), 3
    pc = head.pc_range.float()
    gt = [random_gt(5, pc, K, gen), random_gt(0, pc, K, gen), random_gt(3, pc, K, gen)]
    gt_boxes, gt_labels = [g[0] for g in gt], [g[1] for g in gt]
    gt_boxes[0][1, 3] = 0.0  # a zero-size box: its log-size target is -inf
    torch.manual_seed(seed)
    dn = build_dn_queries(gt_boxes, gt_labels, Q, head.pc_range, K, head.dn_cfg['scalar'], head.dn_cfg['noise_scale'],
                          head.dn_cfg['noise_trans'], head.dn_cfg['split'])
    outs = random_head_predictions(L, B, Q, dn.pad_size, K, gen)
    # predictions near some GT boxes, so the matching is not arbitrary
    codes = encode_boxes(gt_boxes[2])
    outs['bbox_preds'][:, 2, :3] = codes.nan_to_num(neginf=0.0) + 0.1 * torch.randn(L, 3, 10, generator=gen)
    return outs, gt_boxes, gt_labels, dn


def test_losses_match_the_fp64_formula():
    seed = int(torch.randint(0, 2**31 - 1, ()))
    head = build_model(DEMO['fusion'], bias_mode='exact').pts_bbox_head
    outs, gt_boxes, gt_labels, dn = random_loss_inputs(head, seed)
    losses = head.loss_by_feat(outs, gt_boxes, gt_labels, dn)
    ref = reference_losses(head, outs, gt_boxes, gt_labels, dn)
    assert list(losses) == list(ref)  # keys and their order (the logged order)
    bad = {
        k: (float(v), float(ref[k]))
        for k, v in losses.items() if not math.isclose(float(v), float(ref[k]), rel_tol=1e-5, abs_tol=1e-7)
    }
    assert not bad, f'seed {seed}: (ours, reference) {bad}'
    assert all(float(ref[k]) > 0 for k in ref), ref  # every term is exercised


def test_matching_costs_are_evaluated_once_per_sample(monkeypatch):
    """The cost matrices of all decoder layers of a sample come from one cost evaluation (per sample with GT), not
    one per (layer, sample) pair; the matching itself is checked against per-pair assignment above."""
    head = build_model(DEMO['fusion'], bias_mode='exact').pts_bbox_head
    outs, gt_boxes, gt_labels, dn = random_loss_inputs(head, int(torch.randint(0, 2**31 - 1, ())))
    calls = []
    cost_matrix = head.assigner.cost_matrix

    def counted(bbox_pred, *args):
        calls.append(bbox_pred.shape[0])  # prediction rows in this evaluation
        return cost_matrix(bbox_pred, *args)

    monkeypatch.setattr(head.assigner, 'cost_matrix', counted)
    head.loss_by_feat(outs, gt_boxes, gt_labels, dn)
    L, _, Q = outs['cls_scores'].shape[:3]
    assert L > 1 and calls == [L * Q, L * Q]  # samples 0 and 2 (sample 1 has no GT)


def test_losses_without_gt_are_zero_but_connected():
    head = build_model(DEMO['fusion'], bias_mode='exact').pts_bbox_head
    K, Q, L = head.num_classes, head.num_query, len(head.transformer.decoder.layers)
    outs = dict(
        cls_scores=torch.randn(L, 2, Q, K, requires_grad=True), bbox_preds=torch.randn(L, 2, Q, 10, requires_grad=True))
    empty = [torch.zeros(0, 9)] * 2, [torch.zeros(0, dtype=torch.long)] * 2
    losses = head.loss_by_feat(outs, *empty, None)
    assert float(losses['loss_bbox']) == 0.0 and float(losses['dn_loss_bbox']) == 0.0
    expected_cls = head.loss_cls.loss_weight * focal_sum(outs['cls_scores'][-1].detach().flatten(
        0, 1), torch.full((2 * Q, ), K), K, head.loss_cls.gamma, head.loss_cls.alpha) / (2 * Q * head.bg_cls_weight)
    assert math.isclose(float(losses['loss_cls']), float(expected_cls), rel_tol=1e-5)
    sum(losses.values()).backward()
    assert outs['bbox_preds'].grad is not None and outs['cls_scores'].grad.abs().sum() > 0


def test_ranks_with_and_without_gt_make_the_same_collective_calls(monkeypatch):
    """In a distributed run every rank must call the same collectives in the same order: the DN count is averaged
    over ranks also by a rank whose batch has no GT (else it pairs DDP's next gradient all-reduce with it)."""
    from projects.mmdet3d_plugin.models.dense_heads import cmt_head
    calls = []
    head = build_model(DEMO['fusion'], bias_mode='exact').pts_bbox_head
    monkeypatch.setattr(torch.distributed, 'is_initialized', lambda: True)  # after the build (it asks the rank)
    monkeypatch.setattr(cmt_head, 'reduce_mean', lambda t: calls.append(t.numel()) or t)
    gen = torch.Generator().manual_seed(int(torch.randint(0, 1000, ())))
    for sync in (False, True):
        head.sync_avg_factor = sync
        K, Q, L = head.num_classes, head.num_query, len(head.transformer.decoder.layers)
        pc = head.pc_range.float()
        sequences = []
        for n_gt in (4, 0):
            gt_boxes, gt_labels = map(list, zip(*[random_gt(n_gt, pc, K, gen) for _ in range(2)]))
            dn = build_dn_queries(gt_boxes, gt_labels, Q, head.pc_range, K) if n_gt else None
            P = dn.pad_size if dn is not None else 0
            outs = dict(
                cls_scores=torch.randn(L, 2, Q, K, generator=gen),
                bbox_preds=torch.randn(L, 2, Q, 10, generator=gen),
                dn_cls_scores=torch.randn(L, 2, P, K, generator=gen),
                dn_bbox_preds=torch.randn(L, 2, P, 10, generator=gen))
            calls.clear()
            head.loss_by_feat(outs, gt_boxes, gt_labels, dn)
            sequences.append(list(calls))
        assert sequences[0] == sequences[1], (sync, sequences)
        assert sequences[0] == ([3] if sync else [1]), (sync, sequences)  # one call: DN count (+ matching pair)
