"""The head's inference CUDA graph (``model.pts_bbox_head.cuda_graph=True``) against the same head run eagerly."""
import copy

import pytest
import torch
from cmt_test_utils import DEMO, build_model, demo_batch

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
