"""Convert a checkpoint of CMT's original code (junjie18/CMT) for this port:

    python tools/model_converters/convert_cmt_checkpoint.py IN OUT [--config CFG] \
        [--sparse-layout auto|mmcv|spconv2|spconv2_rskc]

Without ``--config`` the config is chosen from the checkpoint's image backbone: ResNet -> ``cmt_compat/
cmt_voxel0100_r50_800x320.py``, VoVNet -> ``cmt_compat/cmt_voxel0075_vov_1600x640.py``. The model of the config is
built on the CPU (no weights loaded) to check every key and shape; the output loads into it with ``strict=True``.
Sparse-convolution kernels are written in the layout of the installed backend (mmcv's op or spconv 2); the
synthesised parameters (e.g. ``bias_scale`` for a config with the geometric bias on) are listed.
Then: ``python tools/test.py CFG OUT``. Mapping: ``projects/mmdet3d_plugin/models/utils/cmt_checkpoint.py``.
"""
import argparse
import os.path as osp
import sys

ROOT = osp.abspath(__file__).rsplit(f'{osp.sep}tools{osp.sep}', 1)[0]  # the repository root
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch

import projects.mmdet3d_plugin  # noqa: F401
from projects.mmdet3d_plugin.models.utils.cmt_checkpoint import (build_model, check_backend_layout,
                                                                 convert_cmt_state_dict, extract_state_dict)
from projects.mmdet3d_plugin.models.utils.sparse_conv_layout import SPARSE_LAYOUTS

COMPAT_CONFIGS = {
    'resnet': 'projects/configs/cmt_compat/cmt_voxel0100_r50_800x320.py',
    'vovnet': 'projects/configs/cmt_compat/cmt_voxel0075_vov_1600x640.py',
}


def guess_config(state_dict) -> str:
    """The cmt_compat config matching the checkpoint's image backbone."""
    keys = list(state_dict)
    if any(k.startswith(('img_backbone.stem.', 'module.img_backbone.stem.')) for k in keys):
        return osp.join(ROOT, COMPAT_CONFIGS['vovnet'])
    if any(k.startswith(('img_backbone.layer1.', 'module.img_backbone.layer1.')) for k in keys):
        return osp.join(ROOT, COMPAT_CONFIGS['resnet'])
    raise ValueError('cannot tell the CMT model from the checkpoint (no ResNet or VoVNet img_backbone keys); '
                     'pass --config')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Convert a CMT (junjie18/CMT) checkpoint to this port's keys")
    parser.add_argument('src', help="CMT checkpoint (.pth with a 'state_dict')")
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument('--config', help='target config (default: the cmt_compat config of the backbone)')
    parser.add_argument(
        '--sparse-layout',
        default='auto',
        choices=('auto', ) + SPARSE_LAYOUTS,
        help="layout of the checkpoint's sparse-conv kernels (auto: from their shapes)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if not osp.isfile(args.src):
            raise FileNotFoundError(f'checkpoint {args.src!r} does not exist')
        if args.config is not None and not osp.isfile(args.config):
            raise FileNotFoundError(f'config {args.config!r} does not exist')
        checkpoint = torch.load(args.src, map_location='cpu', weights_only=False)
        state_dict = extract_state_dict(checkpoint, args.src)
        config = args.config or guess_config(state_dict)
        model = build_model(config)
        layout = check_backend_layout(model) if any(k.startswith('pts_middle_encoder') for k in model.state_dict()) \
            else None
        result = convert_cmt_state_dict(
            state_dict,
            model,
            sparse_src_layout=None if args.sparse_layout == 'auto' else args.sparse_layout,
            sparse_dst_layout=layout)
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    meta = dict(checkpoint.get('meta', {}) or {}) if isinstance(checkpoint, dict) else {}
    meta.update(
        converted_from=osp.abspath(args.src),
        converted_for=osp.relpath(config, ROOT) if osp.abspath(config).startswith(ROOT) else config,
        sparse_conv_layout=result.sparse_layout[1],
        synthesised_keys=sorted(result.synthesised))
    torch.save(dict(state_dict=result.state_dict, meta=meta), args.dst)
    src, dst = result.sparse_layout
    print(f'config: {config}')
    print(f'{len(result.state_dict)} tensors written to {args.dst}; {len(result.renamed)} keys renamed')
    if src is not None:
        print(f'sparse-conv kernels: {src} layout -> {dst} layout (installed backend)')
    if result.synthesised:
        print(f'synthesised (not in the CMT checkpoint): {len(result.synthesised)} tensors')
        for key, how in result.synthesised.items():
            print(f'  {key}: {how}')
    else:
        print('synthesised: none (every tensor comes from the CMT checkpoint)')
    print(f'next: python tools/test.py {osp.relpath(config) if osp.isabs(config) else config} {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
