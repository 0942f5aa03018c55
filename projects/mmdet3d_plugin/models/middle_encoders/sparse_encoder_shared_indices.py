"""mmdet3d's ``SparseEncoder`` whose submanifold convolutions share one index set per stage.

A submanifold convolution (``SubMConv3d``) outputs at its input's active voxels, so its index pairs (which input
voxel feeds which output voxel through which kernel offset) depend only on the active voxels, the kernel size and
the dilation. Every ``SubMConv3d`` of one encoder stage has the same three, so their index pairs are identical.

mmdet3d's ``SparseEncoder`` with ``block_type='basicblock'`` (CMT's voxel configs) builds its ``SparseBasicBlock``
convolutions without an ``indice_key``; spconv and mmcv then rebuild the index pairs in every one of them: 17 index
builds per forward for the voxel0100 encoder (``conv_input`` + 2 convolutions x 8 blocks), each a hash table, a
mask kernel and sorts, driven by the host. Here every ``SubMConv3d`` of stage ``i`` gets the key
``subm{i + 1}`` (the key ``conv_input`` already has in stage 1, and the key mmdet3d gives the ``conv_module``
blocks), so each stage builds its pairs once and the other convolutions look them up: 4 builds instead of 17.

The convolutions compute the same sums from the same pairs and the parameters are unchanged (same modules, same
state-dict keys as ``SparseEncoder``, so mmdet3d and CMT checkpoints load as before).
"""
from mmdet3d.models.middle_encoders import SparseEncoder
from mmdet3d.registry import MODELS


def _is_submanifold(module) -> bool:
    """spconv 2's and mmcv's ``SubMConv3d`` both carry ``subm = True``."""
    return getattr(module, 'subm', False) is True and hasattr(module, 'indice_key')


def submanifold_convs(stage):
    """The ``SubMConv3d`` modules of one encoder stage (``SparseSequential``), in forward order."""
    return [m for m in stage.modules() if _is_submanifold(m)]


@MODELS.register_module()
class SparseEncoderSharedIndices(SparseEncoder):
    """``SparseEncoder`` (same arguments, same parameters) whose ``SubMConv3d`` layers of stage ``i`` share the index
    key ``subm{i + 1}``.

    Forward: voxel features (N, C) float and their coordinates (N, 4) int32 ``(batch, z, y, x)`` -> the BEV feature
    map (B, output_channels * D_out, H_out, W_out), as ``SparseEncoder``.
    """

    def make_encoder_layers(self, make_block, norm_cfg, in_channels, block_type='conv_module', conv_cfg=None):
        kwargs = {} if conv_cfg is None else dict(conv_cfg=conv_cfg)
        out_channels = super().make_encoder_layers(make_block, norm_cfg, in_channels, block_type, **kwargs)
        for i, stage in enumerate(self.encoder_layers):
            key = f'subm{i + 1}'
            convs = submanifold_convs(stage)
            if i == 0:
                convs = submanifold_convs(self.conv_input) + convs  # conv_input owns 'subm1'
            for conv in convs:
                if conv.indice_key not in (None, key):
                    raise ValueError(f'pts_middle_encoder stage {i + 1}: a SubMConv3d has indice_key '
                                     f'{conv.indice_key!r}; SparseEncoderSharedIndices expects none or {key!r}')
                if _geometry(conv) != _geometry(convs[0]):
                    raise ValueError(f'pts_middle_encoder stage {i + 1}: SubMConv3d layers with kernel_size/dilation '
                                     f'{_geometry(convs[0])} and {_geometry(conv)} cannot share index pairs')
                conv.indice_key = key
        return out_channels


def _geometry(conv):
    """(kernel size, dilation) as tuples of ints: what a submanifold convolution's index pairs depend on."""
    return tuple(map(int, conv.kernel_size)), tuple(map(int, conv.dilation))
