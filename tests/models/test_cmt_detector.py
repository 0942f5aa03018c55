"""CMT detector end to end on CPU with the demo configs (pillar LiDAR branch, tiny ResNet)."""
import copy

import pytest
import torch
from cmt_test_utils import DEMO, build_model, demo_batch

from mmdet3d.structures import LiDARInstance3DBoxes
from projects.mmdet3d_plugin.attention import triton_is_available
from projects.mmdet3d_plugin.models.dense_heads.query_denoising import DNQueries, build_dn_queries
from projects.mmdet3d_plugin.models.task_modules import gravity_center_boxes

LAYER_KEYS = ('loss_cls', 'loss_bbox', 'dn_loss_cls', 'dn_loss_bbox')


def _bias_scales(model):
    return [layer.cross_attn.bias_scale for layer in model.pts_bbox_head.transformer.decoder.layers]


@pytest.mark.parametrize('modality', ['fusion', 'lidar', 'camera'])
def test_train_step_per_modality(modality):
    model = build_model(DEMO[modality], bias_mode='exact').train()
    data = demo_batch(model, modality, num_gt=[3, 1])
    assert ('imgs' in data['inputs']) == (modality != 'lidar')
    assert ('voxels' in data['inputs']) == (modality != 'camera')
    losses = model(**data, mode='loss')
    expected = set(LAYER_KEYS) | {f'd0.{k}' for k in LAYER_KEYS}  # 2 decoder layers
    assert set(losses) == expected
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for scale in _bias_scales(model):
        assert scale.grad is not None and torch.isfinite(scale.grad).all() and scale.grad.abs().sum() > 0
    ref = model.pts_bbox_head.reference_points.weight.grad
    assert ref is not None and ref.abs().sum() > 0
    if modality != 'lidar':
        assert model.img_backbone.conv1.weight.grad.abs().sum() > 0
    if modality != 'camera':
        assert model.pts_voxel_encoder.pfn_layers[0].linear.weight.grad.abs().sum() > 0


def _losses_and_step(mode, state, data):
    model = build_model(DEMO['fusion'], no_dropout=True, bias_mode=mode).train()
    model.load_state_dict(state)
    torch.manual_seed(123)  # same DN noise for every path
    losses = model(**copy.deepcopy(data), mode='loss')
    sum(losses.values()).backward()
    grads = [s.grad.clone() for s in _bias_scales(model)]
    before = [s.detach().clone() for s in _bias_scales(model)]
    torch.optim.AdamW(model.parameters(), lr=1e-3).step()
    changed = [not torch.equal(b, s.detach()) for b, s in zip(before, _bias_scales(model))]
    return {k: v.item() for k, v in losses.items()}, grads, changed


# Tolerances (fp32, CPU): 'exact' and 'svd' (rank 10 >= the true rank 10 of the bias) reproduce the dense
# bias up to fp32 rounding of coordinates of O(10) length-scale units; losses must agree to 1e-4 relative,
# each layer's bias_scale gradient to 1e-3 of its largest component (svd's randomised factors are accurate to
# ~5e-7 relative; measured: losses 1e-5, gradients 1e-4 of the largest component).
LOSS_RTOL, GRAD_RTOL = 1e-4, 1e-3


def test_bias_modes_agree_with_sdpa_and_train_bias_scale():
    model = build_model(DEMO['fusion'], no_dropout=True, bias_mode='sdpa').train()
    state = copy.deepcopy(model.state_dict())
    data = demo_batch(model, 'fusion', num_gt=[4, 2])
    ref_losses, ref_grads, ref_changed = _losses_and_step('sdpa', state, data)
    assert all(ref_changed)
    # 'triton' at model level runs only on CUDA (test_gpu_paths_agree_and_bf16_core_trains): under
    # TRITON_INTERPRET on CPU a model step takes minutes; tests/attention covers the kernel itself.
    for mode in ['svd', 'exact']:
        losses, grads, changed = _losses_and_step(mode, state, data)
        assert all(changed), f'{mode}: a layer bias_scale did not change after one step'
        for k, v in ref_losses.items():
            assert losses[k] == pytest.approx(v, rel=LOSS_RTOL, abs=1e-6), (mode, k)
        for g, rg in zip(grads, ref_grads):
            torch.testing.assert_close(g, rg, rtol=0, atol=GRAD_RTOL * rg.abs().max().item())


def test_short_overrides_reach_every_layer():
    model = build_model(DEMO['fusion'], bias_mode='svd', use_bias=False)
    for layer in model.pts_bbox_head.transformer.decoder.layers:
        assert layer.cross_attn.bias_mode == 'svd' and layer.cross_attn.use_bias is False
        assert layer.cross_attn.bias_scale is None


def test_predict_returns_data_samples():
    model = build_model(DEMO['fusion'], bias_mode='exact').eval()
    data = demo_batch(model, 'fusion', num_gt=0)
    with torch.no_grad():
        raw = model(**copy.deepcopy(data), mode='tensor')
        out = model(**data, mode='predict')
    assert len(out) == 2
    coder = model.pts_bbox_head.bbox_coder
    for b, sample in enumerate(out):
        pred = sample.pred_instances_3d
        assert isinstance(pred.bboxes_3d, LiDARInstance3DBoxes) and pred.bboxes_3d.tensor.shape[1] == 9
        k = len(pred.scores_3d)
        assert 0 < k <= coder.max_num and pred.labels_3d.shape == (k, ) and pred.bboxes_3d.tensor.shape[0] == k
        assert (pred.scores_3d[:-1] >= pred.scores_3d[1:]).all()
        assert ((pred.labels_3d >= 0) & (pred.labels_3d < 10)).all()
        # the best box is the top (query, class) of the last layer, decoded by hand
        cls, code = raw['cls_scores'][-1, b], raw['bbox_preds'][-1, b]
        q, c = divmod(int(cls.flatten().argmax()), cls.shape[1])
        assert pred.scores_3d[0].item() == pytest.approx(cls[q, c].sigmoid().item(), rel=1e-6)
        assert int(pred.labels_3d[0]) == c
        dz = code[q, 5].exp()
        expected = [
            code[q, 0], code[q, 1], code[q, 4] - dz / 2, code[q, 2].exp(), code[q, 3].exp(), dz,
            torch.atan2(code[q, 6], code[q, 7]), code[q, 8], code[q, 9]
        ]
        assert pred.bboxes_3d.tensor[0].tolist() == pytest.approx(torch.stack(expected).tolist(), rel=1e-5, abs=1e-5)


def test_dn_mask_keeps_groups_apart():
    model = build_model(DEMO['fusion'], no_dropout=True, bias_mode='exact').train()
    head = model.pts_bbox_head
    data = demo_batch(model, 'fusion', num_gt=[3, 2])
    bev, img, img_hw = model.extract_feat(data['inputs'], data['data_samples'])
    metas = [ds.metainfo for ds in data['data_samples']]
    gts = [ds.gt_instances_3d for ds in data['data_samples']]
    torch.manual_seed(0)
    dn = build_dn_queries([gravity_center_boxes(g.bboxes_3d) for g in gts], [g.labels_3d for g in gts], head.num_query,
                          head.pc_range, head.num_classes)
    size = dn.pad_size // dn.groups
    assert dn.groups == 10 and size == 3
    perturbed = copy.copy(dn)
    perturbed.ref_points = dn.ref_points.clone()
    perturbed.ref_points[:, size:2 * size] = torch.rand(2, size, 3)  # group 1 only
    with torch.no_grad():
        base = head(bev, img, metas, img_hw, dn)
        pert = head(bev, img, metas, img_hw, perturbed)
        # without the mask the perturbation leaks into the other groups and into the matching queries
        unmasked = head(bev, img, metas, img_hw, DNQueries(**{**dn.__dict__, 'attn_mask': None}))
        unmasked_pert = head(bev, img, metas, img_hw, DNQueries(**{**perturbed.__dict__, 'attn_mask': None}))
    others = [g for g in range(dn.groups) if g != 1]
    idx = torch.cat([torch.arange(g * size, (g + 1) * size) for g in others])
    for key in ('dn_cls_scores', 'dn_bbox_preds'):
        torch.testing.assert_close(base[key][:, :, idx], pert[key][:, :, idx], rtol=0, atol=1e-5)
        assert not torch.allclose(base[key][:, :, size:2 * size], pert[key][:, :, size:2 * size], atol=1e-3)
        assert not torch.allclose(unmasked[key][:, :, idx], unmasked_pert[key][:, :, idx], atol=1e-3)
    for key in ('cls_scores', 'bbox_preds'):
        torch.testing.assert_close(base[key], pert[key], rtol=0, atol=1e-5)
        assert not torch.allclose(unmasked[key], unmasked_pert[key], atol=1e-3)


def test_batch_without_gt_and_dropped_modalities():
    model = build_model(DEMO['fusion'], bias_mode='exact').train()
    pc = model.pts_bbox_head.pc_range.tolist()
    from projects.mmdet3d_plugin.models.synthetic_inputs import synthetic_batch
    batch = synthetic_batch(2, pc, num_gt=0, num_cams=2, img_hw=(64, 160))
    batch['inputs']['points'][1] = batch['inputs']['points'][1][:0]  # last sample: no points at all
    batch['inputs']['img'][0].zero_()  # first sample: images dropped (ModalMask3D zeroes the pixels)
    data = model.data_preprocessor(batch, training=True)
    assert (data['inputs']['voxels']['coors'][:, 0] == 0).all()
    losses = model(**data, mode='loss')
    assert all(torch.isfinite(v) for v in losses.values())
    for k, v in losses.items():
        if 'dn_' in k or 'bbox' in k:
            assert v.item() == 0.0, k
    assert losses['loss_cls'].item() > 0
    sum(losses.values()).backward()
    # the empty sample's BEV map is all zeros (PointPillarsScatter of no pillars)
    bev_in = {}
    h = model.pts_middle_encoder.register_forward_hook(lambda m, a, o: bev_in.setdefault('bev', o))
    with torch.no_grad():
        model.extract_feat(data['inputs'], data['data_samples'])
    h.remove()
    assert bev_in['bev'].shape[0] == 2 and bev_in['bev'][1].abs().sum() == 0 and bev_in['bev'][0].abs().sum() > 0


@pytest.mark.gpu
@pytest.mark.skipif(
    not (torch.cuda.is_available() and triton_is_available(torch.device('cuda'))), reason='needs CUDA and triton')
def test_gpu_paths_agree_and_bf16_core_trains():
    """On CUDA: every path (triton included) matches sdpa in fp32; with the configs' bf16 attention core and a
    bf16 autocast step the losses stay finite and every bias_scale gets a gradient."""
    model = build_model(DEMO['fusion'], no_dropout=True, bias_mode='sdpa')
    state = copy.deepcopy(model.state_dict())

    def losses_of(mode):
        m = build_model(DEMO['fusion'], no_dropout=True, bias_mode=mode).cuda().train()
        m.load_state_dict(state)
        torch.manual_seed(123)
        return {k: v.item() for k, v in m(**copy.deepcopy(data), mode='loss').items()}

    data = demo_batch(model.cuda().train(), 'fusion', num_gt=[4, 2], device='cuda')
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 reference matmuls; restored below
    try:
        ref = losses_of('sdpa')
        for mode in ['svd', 'exact', 'triton']:
            losses = losses_of(mode)
            for k, v in ref.items():  # 5e-3: other reduction orders on GPU and the kernel's TF32x3 dots
                assert losses[k] == pytest.approx(v, rel=5e-3, abs=1e-5), (mode, k)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    for mode in ['exact', 'triton']:
        m = build_model(DEMO['fusion'], bias_mode=mode).cuda().train()
        for layer in m.pts_bbox_head.transformer.decoder.layers:
            layer.cross_attn_dtype = torch.bfloat16
        with torch.autocast('cuda', dtype=torch.bfloat16):
            losses = m(**copy.deepcopy(data), mode='loss')
        assert all(torch.isfinite(v) for v in losses.values()), mode
        sum(losses.values()).backward()
        assert all(s.grad is not None and torch.isfinite(s.grad).all() for s in _bias_scales(m)), mode


def _pts_branch_dtypes(model, data, device_type, dtype):
    """Output dtypes of the BEV backbone (SECOND) and neck when extract_pts_feat runs under autocast."""
    seen = {}
    hooks = [
        model.pts_backbone.register_forward_hook(lambda m, i, o: seen.update(backbone=[t.dtype for t in o])),
        model.pts_neck.register_forward_hook(lambda m, i, o: seen.update(neck=[t.dtype for t in o]))
    ]
    with torch.no_grad(), torch.autocast(device_type, dtype=dtype):
        bev = model.extract_pts_feat(data['inputs']['voxels'], len(data['data_samples']))
    for h in hooks:
        h.remove()
    return seen, bev


def test_second_runs_in_fp32_under_autocast():
    """CMT's extract_pts_feat is @force_fp32: SECOND runs in fp32 under AMP; its SECONDFPN has its own
    @auto_fp16, so the neck runs in the low precision."""
    model = build_model(DEMO['lidar']).eval()
    data = demo_batch(model, 'lidar')
    seen, bev = _pts_branch_dtypes(model, data, 'cpu', torch.bfloat16)
    assert seen['backbone'] and all(d == torch.float32 for d in seen['backbone'])
    assert all(d == torch.bfloat16 for d in seen['neck']) and bev.dtype == torch.bfloat16


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_second_runs_in_fp32_under_cuda_fp16_autocast():
    model = build_model(DEMO['lidar']).eval()
    data = demo_batch(model, 'lidar')
    model.cuda()
    data['inputs']['voxels'] = {
        k: v.cuda() if isinstance(v, torch.Tensor) else v
        for k, v in data['inputs']['voxels'].items()
    }
    seen, _ = _pts_branch_dtypes(model, data, 'cuda', torch.float16)
    assert all(d == torch.float32 for d in seen['backbone'])
    assert all(d == torch.float16 for d in seen['neck'])
