"""Move a checkpoint of this project between the two sparse-convolution backends (weight layout):

    python tools/model_converters/convert_sparse_conv_layout.py CONFIG IN OUT --to mmcv|spconv2

``mmcv``: mmcv's sparse conv (kD, kH, kW, C_in, C_out), the backend without spconv; ``spconv2``: spconv 2's
(C_out, kD, kH, kW, C_in), tagged ``version = 2`` in the state dict's metadata (mmdet3d then loads it unchanged).
A spconv-2 checkpoint needs this to load where spconv is not installed; the other direction is optional (mmdet3d's
spconv-2 loader permutes an untagged mmcv-layout kernel itself). The source layout is read from the kernel shapes of
CONFIG's model. Optimizer state is not converted: resume is not possible from the output, ``load_from`` is.
"""
import argparse
import os.path as osp
import sys

ROOT = osp.abspath(__file__).rsplit(f'{osp.sep}tools{osp.sep}', 1)[0]  # the repository root
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch

from projects.mmdet3d_plugin.models.utils.cmt_checkpoint import build_model, extract_state_dict
from projects.mmdet3d_plugin.models.utils.sparse_conv_layout import (BACKEND_LAYOUTS, convert_sparse_layout,
                                                                     sparse_conv_specs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='Convert the sparse-conv kernels of a checkpoint to a layout')
    parser.add_argument('config', help='config of the checkpoint (gives the sparse convolutions)')
    parser.add_argument('src', help='checkpoint')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument('--to', required=True, choices=BACKEND_LAYOUTS, help='layout to write')
    args = parser.parse_args(argv)
    try:
        for path, what in ((args.config, 'config'), (args.src, 'checkpoint')):
            if not osp.isfile(path):
                raise FileNotFoundError(f'{what} {path!r} does not exist')
        checkpoint = torch.load(args.src, map_location='cpu', weights_only=False)
        state_dict = extract_state_dict(checkpoint, args.src)
        specs = sparse_conv_specs(build_model(args.config))
        if not specs:
            raise ValueError(f'{args.config}: the model has no sparse convolution')
        state_dict, src = convert_sparse_layout(state_dict, specs, args.to)
    except (FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    out = dict(state_dict=state_dict, meta=dict(checkpoint.get('meta', {}) or {}, sparse_conv_layout=args.to))
    torch.save(out, args.dst)
    print(f'{len(specs)} sparse-conv kernels: {src} -> {args.to}; written to {args.dst} (no optimizer state)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
