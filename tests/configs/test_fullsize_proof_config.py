"""The learning proof's config (projects/configs/fullsize_proof/cmt_voxel0100_r50_800x320_synthetic_heldout.py) is the
seed config at its real sizes: the model and both pipelines equal the seed's except for the lines its header names
(no pretrained ResNet-50, the GT database under the synthetic data root), and its compressed schedule keeps CMT's
shape (40% up, GT paste off for the last epoch, a held-out evaluation after every epoch)."""
import pytest
from cmt_test_utils import load_cfg

SEED = 'projects/configs/fusion/cmt_voxel0100_r50_800x320_cbgs.py'
PROOF = 'projects/configs/fullsize_proof/cmt_voxel0100_r50_800x320_synthetic_heldout.py'


@pytest.fixture(scope='module')
def cfgs():
    return load_cfg(SEED), load_cfg(PROOF)


def test_model_is_the_seed_model_without_the_pretrained_backbone(cfgs):
    seed, proof = cfgs
    want = seed.model.to_dict()
    assert want['img_backbone'].pop('init_cfg') is not None  # the seed loads CMT's nuImages ResNet-50
    got = proof.model.to_dict()
    assert got['img_backbone'].pop('init_cfg') is None
    assert got == want
    # the sizes the proof claims, read from the built config
    head = proof.model.pts_bbox_head
    assert proof.model.img_backbone.depth == 50
    assert proof.model.data_preprocessor.voxel_layer.voxel_size[:2] == [0.1, 0.1]
    assert head.num_query == 900 and head.transformer.decoder.num_layers == 6
    assert head.bias_mode == 'auto' and head.get('use_bias', True)


@pytest.mark.parametrize('name', ['train_pipeline', 'test_pipeline'])
def test_pipelines_are_the_seeds_with_the_gt_database_moved(cfgs, name):
    seed, proof = cfgs
    seed_steps, proof_steps = ([step.to_dict() for step in cfg[name]] for cfg in cfgs)
    assert [s['type'] for s in proof_steps] == [s['type'] for s in seed_steps]
    for want, got in zip(seed_steps, proof_steps):
        if want['type'] == 'UnifiedObjectSample':
            for key in ('data_root', 'info_path'):
                assert got['db_sampler'].pop(key).startswith(proof.data_root)
                want['db_sampler'].pop(key)
        assert got == want


def test_schedule_keeps_cmts_shape_at_the_proofs_length(cfgs):
    _, proof = cfgs
    n = proof.train_cfg.max_epochs
    assert proof.train_cfg.val_interval == 1
    lr_up, lr_down, mom_up, mom_down = proof.param_scheduler
    for up, down in ((lr_up, lr_down), (mom_up, mom_down)):
        assert (up['begin'], up['end']) == (0, pytest.approx(0.4 * n))
        assert (down['begin'], down['end']) == (pytest.approx(0.4 * n), n)
        assert up['T_max'] == pytest.approx(0.4 * n) and down['T_max'] == pytest.approx(0.6 * n)
    assert lr_up['eta_min_ratio'] == proof.lr_peak_ratio and lr_down['eta_min_ratio'] == 1e-4
    switch = [h for h in proof.custom_hooks if h['type'] == 'ObjectSampleSwitchHook']
    assert len(switch) == 1 and switch[0]['disable_after_epoch'] == n - 1
    # scored on the held-out split, by the devkit metric, from the synthetic set
    assert proof.val_evaluator.ann_file == proof.data_root + 'nuscenes_infos_val.pkl'
    assert proof.val_dataloader.dataset.data_root == proof.data_root
    assert proof.train_dataloader.dataset.dataset.data_root == proof.data_root
