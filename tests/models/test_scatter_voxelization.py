"""ScatterHardVoxelization against mmcv's hard voxelization op (an independent C++/CUDA implementation) and a
hand-worked example; the data preprocessor's voxel_impl switch."""
import pytest
import torch
from mmcv.ops import Voxelization

from projects.mmdet3d_plugin.models.data_preprocessors.scatter_voxelization import (ScatterHardVoxelization,
                                                                                    scatter_hard_voxelize)

PCR = [-4.0, -4.0, -2.0, 4.0, 4.0, 2.0]


def _cloud(n, generator, spread=5.0, clustered=True, channels=5):
    """(n, channels) float32: x y z uniform in +-spread (beyond PCR), some points snapped to shared spots so
    voxels overflow max_num_points, some exactly on voxel faces and on the range limits."""
    pts = (torch.rand(n, channels, generator=generator) * 2 - 1) * spread
    if clustered:
        spots = pts[torch.randint(0, n, (n // 8, ), generator=generator), :3]
        pick = torch.randint(0, n, (n // 2, ), generator=generator)
        pts[pick, :3] = spots[torch.randint(0, len(spots), (len(pick),), generator=generator)] \
            + torch.rand(len(pick), 3, generator=generator) * 0.01
    faces = torch.randint(0, n, (n // 20, ), generator=generator)
    pts[faces, 0] = torch.randint(-8, 9, (len(faces), ), generator=generator).float() * 0.5  # x on faces, +-4 limits
    return pts


def _assert_same(ours, ref):
    for name, a, b in zip(('voxels', 'coors', 'num_points'), ours, ref):
        assert a.dtype == b.dtype, name
        assert a.shape == b.shape, (name, a.shape, b.shape)
        assert torch.equal(a, b), name


@pytest.mark.parametrize('max_points, max_voxels', [(5, 10000), (1, 10000), (3, 40), (35, 7)])
@pytest.mark.parametrize('voxel_size', [[0.5, 0.5, 4.0], [0.3, 0.7, 0.25]])
def test_matches_mmcv_hard_voxelize(max_points, max_voxels, voxel_size):
    g = torch.Generator().manual_seed(max_points * 1000 + max_voxels)
    for _ in range(3):
        pts = _cloud(int(torch.randint(50, 3000, (1, ), generator=g)), g)
        ref = Voxelization(voxel_size, PCR, max_points, max_voxels)(pts)
        ours = scatter_hard_voxelize(pts, voxel_size, PCR, max_points, max_voxels)
        assert len(ref[0]) > 0
        _assert_same(ours, ref)


def test_hand_worked_example():
    # 1 m voxels on [0, 3)^2 x [0, 1): grid x=3, y=3, z=1.
    pts = torch.tensor([
        [0.5, 0.5, 0.5, 1.],  # voxel A = (z0, y0, x0)
        [2.5, 1.5, 0.5, 2.],  # voxel B = (z0, y1, x2)
        [0.2, 0.9, 0.1, 3.],  # A, second point
        [3.0, 0.5, 0.5, 4.],  # x == x_max: outside
        [0.7, 0.1, 0.9, 5.],  # A, third point: over max_num_points=2, dropped
        [1.5, 2.5, 0.5, 6.],  # voxel C: over max_voxels=2, dropped
        [2.9, 1.0, 0.0, 7.]
    ])  # B, second point (faces count as the upper voxel)
    voxels, coors, num = scatter_hard_voxelize(pts, [1., 1., 1.], [0., 0., 0., 3., 3., 1.], 2, 2)
    assert coors.tolist() == [[0, 0, 0], [0, 1, 2]]
    assert num.tolist() == [2, 2]
    assert voxels[..., 3].tolist() == [[1., 3.], [2., 7.]]


def test_empty_and_all_outside_clouds():
    for pts in (torch.zeros(0, 4), torch.full((6, 4), 100.0)):
        voxels, coors, num = scatter_hard_voxelize(pts, [1., 1., 1.], PCR, 4, 10)
        assert voxels.shape == (0, 4, 4) and coors.shape == (0, 3) and num.shape == (0, )
        assert coors.dtype == num.dtype == torch.int32


def test_layer_uses_train_and_test_max_voxels_and_rejects_dynamic():
    layer = ScatterHardVoxelization(
        point_cloud_range=PCR, max_num_points=4, voxel_size=[0.5, 0.5, 4.0], max_voxels=(3, 5))
    pts = _cloud(2000, torch.Generator().manual_seed(1))
    assert len(layer.train()(pts)[0]) == 3
    assert len(layer.eval()(pts)[0]) == 5
    with pytest.raises(ValueError, match='max_num_points'):
        ScatterHardVoxelization(point_cloud_range=PCR, max_num_points=-1, voxel_size=[0.5, 0.5, 4.0])


def test_preprocessor_impls_agree_and_bad_impl_is_named():
    from projects.mmdet3d_plugin.models.data_preprocessors import CmtDataPreprocessor
    cfg = dict(
        voxel=True,
        voxel_type='hard',
        voxel_layer=dict(max_num_points=6, voxel_size=[0.4, 0.4, 4.0], point_cloud_range=PCR, max_voxels=(300, 500)))
    g = torch.Generator().manual_seed(7)
    clouds = [_cloud(1500, g), torch.zeros(0, 5), _cloud(900, g)]
    out = {
        impl: CmtDataPreprocessor(voxel_impl=impl, **cfg).voxelize(clouds, data_samples=[])
        for impl in ('scatter', 'mmcv')
    }
    assert set(out['scatter']) == set(out['mmcv'])
    for key in out['mmcv']:
        assert torch.equal(out['scatter'][key], out['mmcv'][key]), key
    with pytest.raises(ValueError, match='voxel_impl'):
        CmtDataPreprocessor(voxel_impl='spconv', **cfg)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_gpu_matches_mmcv_on_a_sweep_sized_cloud():
    g = torch.Generator().manual_seed(11)
    pts = _cloud(300_000, g, spread=60.0).cuda()
    pcr = [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]
    for voxel_size, max_points, max_voxels in (([0.8, 0.8, 8.0], 20, 16384), ([0.1, 0.1, 0.2], 10, 120000)):
        ref = Voxelization(voxel_size, pcr, max_points, max_voxels)(pts)
        _assert_same(scatter_hard_voxelize(pts, voxel_size, pcr, max_points, max_voxels), ref)
