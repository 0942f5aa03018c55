"""The inference CUDA graphs against the same model run eagerly: the head's (``model.pts_bbox_head.cuda_graph=True``)
and the detector's feature graphs (``model.cuda_graph=True``: image branch on a side stream, BEV backbone + neck)."""
import copy
from contextlib import nullcontext

import pytest
import torch
from cmt_test_utils import DEMO, build_model, demo_batch, load_cfg

from mmdet3d.registry import MODELS
from projects.mmdet3d_plugin.attention import triton_is_available
from projects.mmdet3d_plugin.models.utils.cuda_graph import CudaGraphCache


def test_cuda_graph_switch_is_checked_and_idle_on_cpu():
    with pytest.raises(TypeError, match='cuda_graph must be True or False'):
        build_model(DEMO['fusion'], cuda_graph='yes')
    with pytest.raises(ValueError, match='warmup must be >= 1'):
        CudaGraphCache(lambda x: dict(x=x), warmup=0)
    eager = build_model(DEMO['fusion'], bias_mode='exact').eval()
    graphed = build_model(DEMO['fusion'], bias_mode='exact', cuda_graph=True).eval()
    data = demo_batch(eager, 'fusion', num_gt=0)
    with torch.no_grad():
        ref = eager(**copy.deepcopy(data), mode='tensor')
        out = graphed(**copy.deepcopy(data), mode='tensor')
    assert len(graphed.pts_bbox_head._graphs) == 0  # CPU: the eager path ran
    for key in ref:
        torch.testing.assert_close(out[key], ref[key], rtol=0, atol=0)


def _head_inputs(model, data):
    bev, img, img_hw = model.extract_feat(data['inputs'], data['data_samples'])
    return bev, img, [ds.metainfo for ds in data['data_samples']], img_hw


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('mode', ['exact', 'triton'])
def test_graph_replay_matches_eager_for_new_inputs(mode):
    """Replays read each call's inputs (two batches of one shape give the eager outputs of each), one graph per
    shape, and training or autograd-enabled calls run eagerly."""
    if mode == 'triton' and not triton_is_available(torch.device('cuda')):
        pytest.skip('needs triton')
    model = build_model(DEMO['fusion'], no_dropout=True, bias_mode=mode).cuda().eval()
    head = model.pts_bbox_head
    graphed = copy.deepcopy(head)
    graphed._graphs = CudaGraphCache(graphed._forward_tensors)
    with torch.no_grad():
        batches = [_head_inputs(model, demo_batch(model, 'fusion', num_gt=0, device='cuda', seed=s)) for s in (1, 2)]
        for bev, img, metas, img_hw in batches:
            ref = head(bev, img, metas, img_hw)
            out = graphed(bev, img, metas, img_hw)
            for key in ref:  # same kernels, same inputs: equal up to reduction-order noise
                torch.testing.assert_close(out[key], ref[key], rtol=1e-5, atol=1e-5)
        assert graphed._graphs.captures == 1
        assert not torch.allclose(graphed(*batches[0])['cls_scores'], graphed(*batches[1])['cls_scores'])
        bev, img, metas, img_hw = batches[0]
        graphed(bev[:1], img[:img.shape[0] // 2], metas[:1], img_hw)  # batch 1: a second graph
        assert graphed._graphs.captures == 2
    graphed(bev, img, metas, img_hw)  # grad enabled: eager, nothing captured
    assert graphed._graphs.captures == 2


def _detector(cuda_graph, modality='fusion'):
    """A demo model with the detector's feature graphs and the head's graph on or off (same weights)."""
    return build_model(DEMO[modality], model_overrides=dict(cuda_graph=cuda_graph), cuda_graph=cuda_graph)


def _fresh(data):
    """(inputs, data_samples) copied: the voxel encoder writes into its input."""
    data = copy.deepcopy(data)
    return data['inputs'], data['data_samples']


@pytest.mark.parametrize('modality', ['fusion', 'lidar', 'camera'])
def test_feature_graph_switch_is_checked_and_idle_on_cpu(modality):
    cfg = load_cfg(DEMO[modality])
    cfg.model.cuda_graph = 1
    with pytest.raises(TypeError, match='model.cuda_graph must be True or False'):
        MODELS.build(cfg.model)
    eager, graphed = _detector(False, modality=modality).eval(), _detector(True, modality=modality).eval()
    data = demo_batch(eager, modality, num_gt=0, seed=3)
    with torch.no_grad():
        ref = eager.extract_feat(*_fresh(data))
        out = graphed.extract_feat(*_fresh(data))
    assert len(graphed._img_graphs) == len(graphed._bev_graphs) == 0  # CPU: the eager path ran
    assert [t is None for t in out[:2]] == [modality == 'camera', modality == 'lidar']
    for r, o in zip(ref[:2], out[:2]):
        if r is not None:
            torch.testing.assert_close(o, r, rtol=0, atol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('precision', [None, torch.float16])
def test_feature_graphs_match_eager_for_new_inputs(precision):
    """Feature graphs (image branch replayed on a side stream while the LiDAR branch runs, BEV backbone + neck) give
    the eager features and predictions of each new batch; one capture per graph and precision; training runs
    eagerly."""
    eager, graphed = _detector(False).cuda().eval(), _detector(True).cuda().eval()
    graphed.load_state_dict(eager.state_dict())
    amp = (lambda: torch.autocast('cuda', dtype=precision)) if precision else nullcontext
    tol = dict(rtol=1e-5, atol=1e-5) if precision is None else dict(rtol=2e-3, atol=2e-3)
    feats = []
    with torch.no_grad():
        for seed in (1, 2):
            data = demo_batch(eager, 'fusion', num_gt=0, device='cuda', seed=seed)
            with amp():
                ref = eager.extract_feat(*_fresh(data))
                out = graphed.extract_feat(*_fresh(data))
                ref_pred = eager.predict(*_fresh(data))
                out_pred = graphed.predict(*_fresh(data))
            assert out[2] == ref[2]
            for name, r, o in zip(('bev_feat', 'img_feat'), ref[:2], out[:2]):
                assert o.dtype == r.dtype, name
                torch.testing.assert_close(o, r, **tol, msg=name)
            for r, o in zip(ref_pred, out_pred):
                torch.testing.assert_close(o.pred_instances_3d.scores_3d, r.pred_instances_3d.scores_3d, **tol)
            feats.append(out)
        assert graphed._img_graphs.captures == graphed._bev_graphs.captures == 1
        assert not torch.allclose(feats[0][0], feats[1][0]) and not torch.allclose(feats[0][1], feats[1][1])
    graphed.train()
    graphed.extract_feat(*_fresh(data))  # training: eager, nothing captured
    assert graphed._img_graphs.captures == graphed._bev_graphs.captures == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('modality', ['lidar', 'camera'])
def test_feature_graphs_with_one_modality(modality):
    """A model without an image (LiDAR-only) or LiDAR (camera-only) branch graphs the branch it has and gives the
    eager predictions."""
    eager = _detector(False, modality=modality).cuda().eval()
    graphed = _detector(True, modality=modality).cuda().eval()
    graphed.load_state_dict(eager.state_dict())
    with torch.no_grad():
        for seed in (1, 2):
            data = demo_batch(eager, modality, num_gt=0, device='cuda', seed=seed)
            ref, out = eager.predict(*_fresh(data)), graphed.predict(*_fresh(data))
            for r, o in zip(ref, out):
                torch.testing.assert_close(
                    o.pred_instances_3d.scores_3d, r.pred_instances_3d.scores_3d, rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(
                    o.pred_instances_3d.bboxes_3d.tensor, r.pred_instances_3d.bboxes_3d.tensor, rtol=1e-5, atol=1e-4)
    assert (len(graphed._img_graphs), len(graphed._bev_graphs)) == ((0, 1) if modality == 'lidar' else (1, 0))
