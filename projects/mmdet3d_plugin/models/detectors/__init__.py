"""CMT detector."""
from .cmt_detector import CmtDetector

__all__ = ['CmtDetector']
