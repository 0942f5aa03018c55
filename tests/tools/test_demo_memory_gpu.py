"""GPU: the demo's one-step peak-memory comparison of the attention paths on the same batch."""
import os.path as osp

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
FIT = osp.join(ROOT, 'projects/configs/demo/cmt_demo_fusion_fit_train.py')


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_triton_step_uses_less_memory_than_sdpa(synthetic_root):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    import projects.mmdet3d_plugin  # noqa: F401
    from projects.mmdet3d_plugin.datasets.config_utils import retarget_data_root
    from projects.mmdet3d_plugin.utils.demo_report import memory_line, step_peak_memory
    init_default_scope('mmdet3d')
    cfg = retarget_data_root(Config.fromfile(FIT), synthetic_root)
    cfg.model.pts_bbox_head.transformer.decoder.layer_cfg.cross_attn_dtype = 'bfloat16'
    loader = cfg.train_dataloader
    loader.num_workers, loader.persistent_workers = 0, False
    batch = next(iter(Runner.build_dataloader(loader)))
    steps = step_peak_memory(cfg.model, batch, ('sdpa', 'triton'))
    assert [s['mode'] for s in steps] == ['sdpa', 'triton']
    assert steps[1]['ran'] == 'triton'
    assert 0 < steps[1]['peak_mib'] < steps[0]['peak_mib'], steps
    # same weights (same seed) and same batch: the two paths agree on the loss
    assert steps[1]['loss'] == pytest.approx(steps[0]['loss'], rel=0.05), steps
    line = memory_line(steps, len(batch['data_samples']))
    assert line.startswith('peak GPU memory of one training step, same batch of 4: sdpa ') and 'less than sdpa' in line
