"""``tools/test.py --amp``: the test loop runs under autocast (mmengine ``TestLoop(fp16=True)``), the model's fp32
islands stay fp32."""
import importlib.util
import os.path as osp

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'projects/configs/demo/cmt_demo_fusion_pillar_r18.py')
FULL = osp.join(ROOT, 'projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py')


def _tool():
    # tools/test.py: not `import test`, which may be the standard library's package
    spec = importlib.util.spec_from_file_location('cmt_test_tool_amp', osp.join(ROOT, 'tools', 'test.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def _random_checkpoint(synthetic_root, tmp_path):
    """(config of the synthetic set, path of a checkpoint of its model with seeded random weights)."""
    from reliability_helpers import load_config

    from mmdet3d.registry import MODELS
    cfg = load_config(synthetic_root)
    torch.manual_seed(0)
    ckpt = tmp_path / 'model.pth'
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict(), 'meta': {}}, ckpt)
    return cfg, ckpt


@pytest.mark.parametrize('path', [DEMO, FULL])
def test_amp_sets_the_test_loop_fp16_flag(path):
    from projects.mmdet3d_plugin.utils import load_config
    tool = _tool()
    args = tool.parse_args([path, 'ckpt.pth', '--amp'])
    assert args.amp and args.amp_dtype is None
    cfg = load_config(path, None)
    assert not cfg.test_cfg.get('fp16', False)
    tool.apply_amp(cfg, args.amp)
    assert cfg.test_cfg['fp16'] is True and cfg.test_cfg['type'] == 'TestLoop'
    # the config route gives the same loop config
    via_options = load_config(path, {'test_cfg.fp16': True})
    assert dict(via_options.test_cfg) == dict(cfg.test_cfg)
    # without --amp the config is left alone; --amp-dtype implies --amp
    cfg = load_config(path, None)
    tool.apply_amp(cfg, tool.parse_args([path, 'ckpt.pth']).amp)
    assert 'fp16' not in cfg.test_cfg
    args = tool.parse_args([path, 'ckpt.pth', '--amp-dtype', 'bfloat16'])
    assert args.amp and args.amp_dtype == 'bfloat16'


def test_amp_dtype_sets_the_cuda_autocast_dtype(monkeypatch):
    tool = _tool()
    calls = []
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    tool.set_cuda_autocast_dtype('bfloat16')  # no CUDA: nothing to set
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch, 'set_autocast_dtype', lambda dev, dt: calls.append((dev, dt)), raising=False)
    tool.set_cuda_autocast_dtype(None)
    tool.set_cuda_autocast_dtype('bfloat16')
    assert calls == [('cuda', torch.bfloat16)]


@pytest.mark.slow
def test_amp_test_run_predicts_under_autocast(synthetic_root, tmp_path, capsys, monkeypatch):
    """The whole test loop with --amp: predict runs under autocast (bf16 on CPU, fp16 on CUDA), the pillar
    encoder, scatter and SECOND give fp32, the image backbone the autocast dtype, and the metric is computed."""
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    amp_dtype = torch.float16 if dev == 'cuda' else torch.bfloat16
    from mmengine.runner import Runner
    from reliability_helpers import config_file

    from projects.mmdet3d_plugin.models.detectors.cmt_detector import CmtDetector
    cfg, ckpt = _random_checkpoint(synthetic_root, tmp_path)

    seen = dict(calls=0, dtypes={}, fp16=None)
    orig_predict, orig_test = CmtDetector.predict, Runner.test

    def record_dtype(name):

        def hook(module, args, out):  # returns None: the output stays as it is
            seen['dtypes'].setdefault(name, (out if torch.is_tensor(out) else out[0]).dtype)

        return hook

    def spy_predict(self, *args, **kwargs):
        if seen['calls'] == 0:
            for name in ('pts_voxel_encoder', 'pts_middle_encoder', 'pts_backbone', 'img_backbone'):
                getattr(self, name).register_forward_hook(record_dtype(name))
        seen['calls'] += 1
        seen['autocast'] = (torch.is_autocast_enabled(dev), torch.get_autocast_dtype(dev))
        results = orig_predict(self, *args, **kwargs)
        seen['score_dtype'] = results[0].pred_instances_3d.scores_3d.dtype
        return results

    def spy_test(self):
        seen['fp16'] = self.test_loop.fp16
        return orig_test(self)

    monkeypatch.setattr(CmtDetector, 'predict', spy_predict)
    monkeypatch.setattr(Runner, 'test', spy_test)
    tool = _tool()
    code = tool.main([config_file(tmp_path, cfg), str(ckpt), '--work-dir', str(tmp_path / 'wd'), '--amp'])
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    assert seen['fp16'] is True and seen['calls'] > 0
    assert seen['autocast'] == (True, amp_dtype)
    assert seen['dtypes'] == dict(
        pts_voxel_encoder=torch.float32,
        pts_middle_encoder=torch.float32,
        pts_backbone=torch.float32,
        img_backbone=amp_dtype)
    assert seen['score_dtype'] == torch.float32  # the head decodes in fp32
    assert f'test.py --amp: test loop under {dev} autocast ({str(amp_dtype)[6:]})' in out.out + out.err
    assert 'pred_instances_3d_NuScenes/mAP' in out.out + out.err


@pytest.mark.parametrize('path', [DEMO, FULL])
def test_cuda_graph_flag_sets_both_graph_switches(path):
    """``--cuda-graph`` gives the config of ``--cfg-options model.cuda_graph=True model.pts_bbox_head.cuda_graph=True``;
    without it the config keeps its defaults (graphs off)."""
    from projects.mmdet3d_plugin.utils import load_config
    tool = _tool()
    cfg = load_config(path, None)
    tool.apply_cuda_graph(cfg, tool.parse_args([path, 'ckpt.pth']).cuda_graph)
    assert not cfg.model.get('cuda_graph', False) and not cfg.model.pts_bbox_head.get('cuda_graph', False)
    tool.apply_cuda_graph(cfg, tool.parse_args([path, 'ckpt.pth', '--cuda-graph']).cuda_graph)
    via_options = load_config(path, {'model.cuda_graph': True, 'model.pts_bbox_head.cuda_graph': True})
    assert cfg.model.to_dict() == via_options.model.to_dict()
    assert cfg.model.cuda_graph is True and cfg.model.pts_bbox_head.cuda_graph is True


@pytest.mark.slow
def test_cuda_graph_test_run_predicts_as_the_eager_run(synthetic_root, tmp_path, capsys, monkeypatch):
    """The whole test loop with --cuda-graph: the model it builds has the feature and head graphs switched on, and its
    scores equal the eager run's on every test sample (CPU: the eager path runs, equal exactly; CUDA: the graphs
    replay, equal to float noise), and the metric is computed."""
    from reliability_helpers import config_file

    from projects.mmdet3d_plugin.models.detectors.cmt_detector import CmtDetector
    cfg, ckpt = _random_checkpoint(synthetic_root, tmp_path)
    runs, orig_predict = {}, CmtDetector.predict

    def spy_predict(self, *args, **kwargs):
        graphs = (self._img_graphs is not None, self._bev_graphs is not None, self.pts_bbox_head._graphs is not None)
        results = orig_predict(self, *args, **kwargs)
        run = runs.setdefault(graphs, {})
        for r in results:
            run[r.sample_idx] = r.pred_instances_3d.scores_3d.detach().cpu()
        return results

    monkeypatch.setattr(CmtDetector, 'predict', spy_predict)
    tool = _tool()
    for flags in ([], ['--cuda-graph']):
        code = tool.main([config_file(tmp_path, cfg), str(ckpt), '--work-dir', str(tmp_path / 'wd'), *flags])
        out = capsys.readouterr()
        assert code == 0, out.err[-3000:]
        assert 'pred_instances_3d_NuScenes/mAP' in out.out + out.err
    assert set(runs) == {(False, False, False), (True, True, True)}
    eager, graphed = runs[(False, False, False)], runs[(True, True, True)]
    assert eager.keys() == graphed.keys() and len(eager) > 1
    tol = dict(rtol=1e-4, atol=1e-5) if torch.cuda.is_available() else dict(rtol=0, atol=0)
    for idx in eager:
        torch.testing.assert_close(graphed[idx], eager[idx], **tol)
