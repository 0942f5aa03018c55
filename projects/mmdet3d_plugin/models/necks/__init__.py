"""Image necks CMT needs beyond mmdet (CPFPN)."""
from .cp_fpn import CPFPN

__all__ = ['CPFPN']
