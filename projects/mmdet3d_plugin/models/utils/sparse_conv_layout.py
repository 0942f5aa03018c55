"""Weight layouts of sparse-convolution kernels and conversion between the two backends of mmdet3d 1.x.

mmdet3d's ``SparseEncoder`` builds mmcv's sparse convolution, or spconv 2's when spconv is importable
(``mmdet3d.models.layers.spconv.IS_SPCONV2_AVAILABLE``). The two store a 3D kernel differently:

| layout name | shape (3D) | who stores it |
| --- | --- | --- |
| ``'mmcv'`` | (kD, kH, kW, C_in, C_out) ("RSCK") | mmcv ``SparseConvolution``, spconv 1.x |
| ``'spconv2'`` | (C_out, kD, kH, kW, C_in) ("KRSC") | spconv 2.2+ (implicit-GEMM algorithms, the CUDA default) |
| ``'spconv2_rskc'`` | (kD, kH, kW, C_out, C_in) ("RSKC") | spconv 2.0/2.1 native algorithm (read only) |

Element ``W_mmcv[dz, dy, dx, i, o] == W_spconv2[o, dz, dy, dx, i]``. mmdet3d 1.4's spconv-2 ``_load_from_state_dict``
permutes a loaded kernel from ``'mmcv'`` to ``'spconv2'`` unless the checkpoint's ``_metadata`` gives the module
``version == 2`` (what a model built with spconv 2 saves); :func:`set_sparse_layout_metadata` writes that metadata so
a converted state dict is loaded as it is.
"""
from collections import OrderedDict
from typing import Dict, Iterable, Mapping, NamedTuple, Optional, Sequence, Tuple

from torch import Tensor, nn

# Every layout as a permutation of the canonical 'mmcv' layout (kernel dims K..., C_in, C_out), for a kernel
# with ``n`` spatial dims: layout tensor = mmcv tensor.permute(*_FROM_MMCV[name](n)).
_FROM_MMCV = {
    'mmcv': lambda n: tuple(range(n + 2)),
    'spconv2': lambda n: (n + 1, *range(n), n),
    'spconv2_rskc': lambda n: (*range(n), n + 1, n),
}
SPARSE_LAYOUTS = tuple(_FROM_MMCV)
BACKEND_LAYOUTS = ('mmcv', 'spconv2')  # what a model can be built with (the layouts this project writes)


class SparseConvSpec(NamedTuple):
    """One sparse convolution of a model: kernel size (kD, kH, kW), in and out channels."""
    kernel_size: Tuple[int, ...]
    in_channels: int
    out_channels: int


def _check_layout(layout: str, allowed: Sequence[str] = SPARSE_LAYOUTS) -> str:
    if layout not in allowed:
        raise ValueError(f'sparse-conv layout must be one of {list(allowed)}, got {layout!r}')
    return layout


def _inverse(perm: Sequence[int]) -> Tuple[int, ...]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


def layout_shape(spec: SparseConvSpec, layout: str) -> Tuple[int, ...]:
    """Shape of the kernel of ``spec`` stored in ``layout``."""
    mmcv_shape = (*spec.kernel_size, spec.in_channels, spec.out_channels)
    return tuple(mmcv_shape[p] for p in _FROM_MMCV[_check_layout(layout)](len(spec.kernel_size)))


def convert_kernel(weight: Tensor, src: str, dst: str) -> Tensor:
    """A kernel (n spatial dims + 2 channel dims) from layout ``src`` to layout ``dst`` (contiguous copy)."""
    _check_layout(src), _check_layout(dst)
    n = weight.dim() - 2
    if n < 1:
        raise ValueError(f'a sparse-conv kernel has >= 3 dims, got shape {tuple(weight.shape)}')
    to_mmcv = _inverse(_FROM_MMCV[src](n))
    return weight.permute(*to_mmcv).permute(*_FROM_MMCV[dst](n)).contiguous()


def _is_sparse_conv(module: nn.Module) -> bool:
    """mmcv's or spconv's sparse convolution (by their base classes' modules, without importing spconv)."""
    for cls in type(module).__mro__:
        if cls.__name__ == 'SparseConvolution' and cls.__module__.split('.')[0] in ('mmcv', 'spconv'):
            return True
    return False


def sparse_conv_specs(model: nn.Module) -> Dict[str, SparseConvSpec]:
    """``{'<module path>.weight': SparseConvSpec}`` for every sparse convolution of ``model``."""
    specs = {}
    for name, module in model.named_modules():
        if _is_sparse_conv(module):
            ks = module.kernel_size
            ks = tuple(int(k) for k in (ks if isinstance(ks, (list, tuple)) else [ks] * (module.weight.dim() - 2)))
            specs[f'{name}.weight'] = SparseConvSpec(ks, int(module.in_channels), int(module.out_channels))
    return specs


def layouts_matching(shape: Sequence[int], spec: SparseConvSpec, layouts: Iterable[str] = SPARSE_LAYOUTS) -> set:
    """The layouts in which ``spec``'s kernel has ``shape``."""
    return {lay for lay in layouts if layout_shape(spec, lay) == tuple(shape)}


def detect_sparse_layout(state_dict: Mapping[str, Tensor],
                         specs: Mapping[str, SparseConvSpec],
                         candidates: Sequence[str] = SPARSE_LAYOUTS,
                         what: str = 'checkpoint') -> str:
    """The one layout in ``candidates`` that explains the shapes of every sparse-conv kernel of ``state_dict``.

    A state dict is in one layout throughout, so kernels whose shape fits several layouts (C_in == C_out) are
    decided by the others. Raises ValueError when no layout or more than one fits all kernels.
    """
    possible = set(candidates)
    present = [k for k in specs if k in state_dict]
    if not present:
        raise ValueError(f'{what}: none of the {len(specs)} sparse-conv kernels of the model '
                         f'(e.g. {next(iter(specs), "?")}) is in the state dict')
    for key in present:
        fits = layouts_matching(state_dict[key].shape, specs[key], candidates)
        if not fits:
            expected = {lay: layout_shape(specs[key], lay) for lay in candidates}
            raise ValueError(f'{what}: {key} has shape {tuple(state_dict[key].shape)}, which is no sparse-conv '
                             f'layout of {specs[key]}; expected one of {expected}')
        possible &= fits
    if len(possible) != 1:
        raise ValueError(f'{what}: the sparse-conv kernel shapes fit layouts {sorted(possible)}; pass the layout '
                         f'explicitly (one of {list(candidates)})')
    return possible.pop()


def model_sparse_layout(model: nn.Module) -> str:
    """Layout the model's own sparse convolutions store (from their parameter shapes)."""
    specs = sparse_conv_specs(model)
    return detect_sparse_layout(model.state_dict(), specs, BACKEND_LAYOUTS, what='model')


def installed_backend_layout() -> str:
    """'spconv2' when mmdet3d builds spconv 2's sparse convolution (spconv importable), else 'mmcv'."""
    from mmdet3d.models.layers.spconv import IS_SPCONV2_AVAILABLE
    return 'spconv2' if IS_SPCONV2_AVAILABLE else 'mmcv'


def set_sparse_layout_metadata(state_dict: Dict[str, Tensor], specs: Mapping[str, SparseConvSpec], layout: str) -> None:
    """Record ``layout`` in ``state_dict._metadata`` for mmdet3d's spconv-2 loader.

    ``'spconv2'``: each sparse-conv module gets ``version = 2`` (loaded without permutation); ``'mmcv'``: the
    version is dropped (mmdet3d permutes the kernel to spconv 2's layout if it loads it into a spconv-2 model).
    """
    _check_layout(layout, BACKEND_LAYOUTS)
    meta = getattr(state_dict, '_metadata', None)
    if meta is None:
        meta = OrderedDict()
    for key in specs:
        if key not in state_dict:
            continue
        prefix = key[:-len('.weight')]
        entry = dict(meta.get(prefix, {}))
        if layout == 'spconv2':
            entry['version'] = 2
        else:
            entry.pop('version', None)
        meta[prefix] = entry
    state_dict._metadata = meta


def convert_sparse_layout(state_dict: Mapping[str, Tensor],
                          specs: Mapping[str, SparseConvSpec],
                          dst: str,
                          src: Optional[str] = None) -> Tuple['OrderedDict[str, Tensor]', str]:
    """Copy of ``state_dict`` with every sparse-conv kernel in layout ``dst`` (and the matching ``_metadata``).

    Args:
        state_dict: full model state dict (other keys are copied unchanged).
        specs: from :func:`sparse_conv_specs` of the target model.
        dst: 'mmcv' or 'spconv2'.
        src: source layout; None detects it from the kernel shapes (:func:`detect_sparse_layout`).

    Returns:
        (new state dict, source layout).
    """
    _check_layout(dst, BACKEND_LAYOUTS)
    src = detect_sparse_layout(state_dict, specs) if src is None else _check_layout(src)
    out = OrderedDict()
    for key, value in state_dict.items():
        if key in specs:
            if tuple(value.shape) != layout_shape(specs[key], src):
                raise ValueError(f'{key}: shape {tuple(value.shape)} is not the {src!r} layout '
                                 f'{layout_shape(specs[key], src)} of {specs[key]}')
            value = convert_kernel(value, src, dst)
        out[key] = value
    meta = getattr(state_dict, '_metadata', None)
    if meta is not None:
        out._metadata = OrderedDict((k, dict(v)) for k, v in meta.items())
    set_sparse_layout_metadata(out, specs, dst)
    return out, src
