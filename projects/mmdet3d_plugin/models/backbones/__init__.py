"""Image backbones CMT needs beyond mmdet (VoVNet)."""
from .vovnet import VOVNET_SPECS, VoVNet, VoVNetSpec

__all__ = ['VoVNet', 'VoVNetSpec', 'VOVNET_SPECS']
