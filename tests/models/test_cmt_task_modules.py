"""Box codec, Hungarian assigner and NMS-free coder against hand-computed / brute-force references."""
import itertools
import math

import numpy as np
import pytest
import torch

import projects.mmdet3d_plugin  # noqa: F401  (registers the modules)
from mmdet3d.registry import TASK_UTILS
from mmdet3d.structures import LiDARInstance3DBoxes
from projects.mmdet3d_plugin.models.task_modules import decode_boxes, encode_boxes, gravity_center_boxes


def test_encode_decode_by_hand():
    box = torch.tensor([[1.0, 2.0, 3.0, 4.0, 2.0, 1.5, 0.3, 0.5, -0.5]], dtype=torch.float64)
    code = encode_boxes(box)
    expected = [1.0, 2.0, math.log(4.0), math.log(2.0), 3.0, math.log(1.5), math.sin(0.3), math.cos(0.3), 0.5, -0.5]
    assert code[0].tolist() == pytest.approx(expected, abs=1e-12)
    assert decode_boxes(code)[0].tolist() == pytest.approx(box[0].tolist(), abs=1e-12)
    # 7-d boxes get zero velocity
    assert encode_boxes(box[:, :7])[0, 8:].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match=r'\(N, 7\) or \(N, 9\)'):
        encode_boxes(box[:, :6])


def test_gravity_center_boxes():
    boxes = LiDARInstance3DBoxes(torch.tensor([[1.0, 2.0, -1.0, 4.0, 2.0, 2.0, 0.1, 0.0, 0.0]]), box_dim=9)
    out = gravity_center_boxes(boxes)
    assert out[0, 2].item() == pytest.approx(0.0)  # bottom -1 + height 2 / 2
    assert out[0, 3:].tolist() == pytest.approx(boxes.tensor[0, 3:].tolist())


def _focal_cost(logits, labels, alpha=0.25, gamma=2.0, eps=1e-12):
    p = 1 / (1 + np.exp(-logits))
    neg = -np.log(1 - p + eps) * (1 - alpha) * p**gamma
    pos = -np.log(p + eps) * alpha * (1 - p)**gamma
    return pos[:, labels] - neg[:, labels]


CODE_WEIGHTS = [2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2]


def _reference_cost(cls, pred, gt, labels, cw):
    """fp64 matching cost (Nq, Ng): focal cost x 2 + 0.25 x L1 of the first 8 weighted codes (CMT's config)."""
    gt64 = gt.double().numpy()
    gt_code = np.concatenate([
        gt64[:, :2],
        np.log(gt64[:, 3:5]), gt64[:, 2:3],
        np.log(gt64[:, 5:6]),
        np.sin(gt64[:, 6:7]),
        np.cos(gt64[:, 6:7])
    ], 1)
    w = np.array(cw[:8])
    reg = np.abs(pred.double().numpy()[:, None, :8] * w - gt_code[None] * w).sum(-1) * 0.25
    return _focal_cost(cls.double().numpy(), labels.numpy()) * 2.0 + reg


def _cmt_assigner(cw=CODE_WEIGHTS):
    return TASK_UTILS.build(
        dict(
            type='CmtHungarianAssigner3D',
            cls_cost=dict(type='mmdet.FocalLossCost', weight=2.0),
            reg_cost=dict(type='CmtBBox3DL1Cost', weight=0.25),
            code_weights=cw))


def _random_gt(ng, g):
    return torch.cat(
        [torch.randn(ng, 3, generator=g),
         torch.rand(ng, 3, generator=g) + 0.5,
         torch.randn(ng, 3, generator=g)], 1)


def test_hungarian_assigner_matches_brute_force():
    g = torch.Generator().manual_seed(3)
    nq, ng, nc = 5, 3, 4
    cw = CODE_WEIGHTS
    assigner = _cmt_assigner(cw)
    cls = torch.randn(nq, nc, generator=g)
    pred = torch.randn(nq, 10, generator=g)
    gt = _random_gt(ng, g)
    labels = torch.tensor([0, 3, 3])
    res = assigner.assign(pred, cls, gt, labels)
    cost = _reference_cost(cls, pred, gt, labels, cw)
    best = min(sum(cost[q, j] for j, q in enumerate(perm)) for perm in itertools.permutations(range(nq), ng))
    got = res.gt_inds
    assert (got > 0).sum() == ng and sorted((got[got > 0] - 1).tolist()) == list(range(ng))
    total = sum(cost[q, got[q] - 1] for q in range(nq) if got[q] > 0)
    assert total == pytest.approx(best, rel=1e-5)
    assert res.labels[got > 0].tolist() == labels[got[got > 0] - 1].tolist()


def test_cost_matrices_of_several_layers_equal_each_layers_cost():
    """cost_matrices (all layers of a sample in one evaluation, from a strided slice of (L, B, Q, .) predictions)
    against cost_matrix per layer (to fp32 rounding: vectorised CPU kernels may round an element of ``log`` differently
    by its position in the buffer, up to 3.3e-6 absolute over 2000 seeds) and the fp64 reference cost (1e-5)."""
    g = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ())))
    L, B, nq, ng, nc = 3, 2, 7, 4, 5
    assigner = _cmt_assigner()
    cls = torch.randn(L, B, nq, nc, generator=g)
    pred = torch.randn(L, B, nq, 10, generator=g)
    gt, labels = _random_gt(ng, g), torch.randint(0, nc, (ng, ), generator=g)
    costs = assigner.cost_matrices(pred[:, 1], cls[:, 1], gt, labels)
    assert costs.shape == (L, nq, ng)
    for layer in range(L):
        torch.testing.assert_close(costs[layer], assigner.cost_matrix(pred[layer, 1], cls[layer, 1], gt, labels))
        ref = _reference_cost(cls[layer, 1], pred[layer, 1], gt, labels, CODE_WEIGHTS)
        np.testing.assert_allclose(costs[layer].double().numpy(), ref, rtol=1e-5, atol=1e-5)


def test_hungarian_assigner_without_gt():
    assigner = TASK_UTILS.build(
        dict(
            type='CmtHungarianAssigner3D',
            cls_cost=dict(type='mmdet.FocalLossCost'),
            reg_cost=dict(type='CmtBBox3DL1Cost')))
    res = assigner.assign(torch.randn(4, 10), torch.randn(4, 3), torch.zeros(0, 9), torch.zeros(0, dtype=torch.long))
    assert res.gt_inds.tolist() == [0, 0, 0, 0]


def test_nms_free_coder_topk_and_range():
    coder = TASK_UTILS.build(
        dict(type='CmtNMSFreeCoder', post_center_range=[-10, -10, -5, 10, 10, 5], max_num=3, num_classes=2))
    logits = torch.full((4, 2), -10.0)
    logits[2, 1], logits[0, 0], logits[3, 1], logits[1, 0] = 3.0, 2.0, 1.0, 0.5
    boxes = torch.tensor([[1.0, 1, 0, 2, 1, 1, 0.0, 0, 0], [0, 0, 0, 1, 1, 1, 0, 0, 0],
                          [2, -3, 1, 4, 2, 1.5, 0.7, 1, 2], [50, 0, 0, 1, 1, 1, 0, 0, 0]])
    codes = encode_boxes(boxes)
    out = coder.decode(logits, codes)
    # top-3 scores are (q2, c1), (q0, c0), (q3, c1); q3 is outside the centre range and dropped
    assert out['labels'].tolist() == [1, 0]
    assert out['scores'].tolist() == pytest.approx([1 / (1 + math.exp(-3)), 1 / (1 + math.exp(-2))])
    torch.testing.assert_close(out['bboxes'], boxes[[2, 0]], atol=1e-5, rtol=0)


def test_empty_safe_voxelization_skips_the_op_for_empty_clouds():
    from projects.mmdet3d_plugin.models.data_preprocessors.cmt_data_preprocessor import EmptySafeVoxelization

    class Layer(torch.nn.Module):
        max_num_points, voxel_size = 7, [0.5, 0.5, 8.0]

        def forward(self, points):
            if points.shape[0] == 0:
                raise RuntimeError('kernel launched on zero points')
            return 'voxelized'

    wrapped = EmptySafeVoxelization(Layer())
    voxels, coors, num = wrapped(torch.zeros(0, 5))
    assert voxels.shape == (0, 7, 5) and coors.shape == (0, 3) and num.shape == (0, )
    assert coors.dtype == torch.int32 and num.dtype == torch.int32
    assert wrapped(torch.zeros(3, 5)) == 'voxelized'
    assert wrapped.voxel_size == [0.5, 0.5, 8.0]  # attributes the preprocessor reads pass through
