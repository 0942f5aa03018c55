"""Which sparse-convolution backend a built model runs.

mmdet3d's ``SparseEncoder`` builds spconv 2's ``SubMConv3d`` / ``SparseConv3d`` (``spconv.pytorch``) when spconv is
importable (``mmdet3d.models.layers.spconv.IS_SPCONV2_AVAILABLE``), else mmcv's (``mmcv.ops``). The flag says what
*would* be built; this module reads what *was* built: the package of the class that defines each sparse
convolution (the ``SparseConvolution`` base in the module's MRO, ``spconv.pytorch.conv`` or ``mmcv.ops.sparse_conv``),
so a model built before spconv was installed, or with a patched flag, is reported as it is.
"""
import sys
from typing import Dict, Optional

from torch import nn

SPARSE_BACKENDS = ('spconv', 'mmcv')


def _sparse_conv_package(module: nn.Module) -> Optional[str]:
    """'spconv' | 'mmcv' when ``module`` is a sparse convolution of that package, else None."""
    for cls in type(module).__mro__:
        if cls.__name__ == 'SparseConvolution':
            package = cls.__module__.split('.')[0]
            if package in SPARSE_BACKENDS:
                return package
    return None


def package_version(package: str) -> Optional[str]:
    """``<package>.__version__`` of the imported package (spconv wheels are named spconv-cuXXX, so the
    distribution name is no help), else its distribution's version, else None."""
    mod = sys.modules.get(package)
    version = getattr(mod, '__version__', None)
    if version:
        return str(version)
    try:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as dist_version
        try:
            return dist_version(package)
        except PackageNotFoundError:
            return None
    except ImportError:  # pragma: no cover
        return None


def sparse_conv_backend(model: nn.Module) -> Dict:
    """The sparse-conv backend of ``model`` (wrappers such as DDP included).

    Returns:
        dict(backend='spconv 2.3.6' | 'mmcv' | 'spconv 2.3.6,mmcv' (mixed) | None (no sparse convolution),
        packages={package: version|None}, num_sparse_convs=int, example=str|None (first sparse conv's name and
        class), import_flag=bool|None (mmdet3d's ``IS_SPCONV2_AVAILABLE``; None if mmdet3d can't tell)).
    """
    counts: Dict[str, int] = {}
    example = None
    for name, module in model.named_modules():
        package = _sparse_conv_package(module)
        if package is None:
            continue
        counts[package] = counts.get(package, 0) + 1
        if example is None:
            example = f'{name} ({type(module).__module__}.{type(module).__name__})'
    packages = {p: package_version(p) for p in SPARSE_BACKENDS if p in counts}
    labels = [f'spconv {packages["spconv"] or "?"}' if p == 'spconv' else p for p in packages]
    try:
        from mmdet3d.models.layers.spconv import IS_SPCONV2_AVAILABLE as flag
    except ImportError:  # pragma: no cover
        flag = None
    return dict(
        backend=','.join(labels) if labels else None,
        packages=packages,
        num_sparse_convs=sum(counts.values()),
        example=example,
        import_flag=None if flag is None else bool(flag))
