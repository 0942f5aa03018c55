"""Data preprocessor tolerant of empty point clouds."""
from .cmt_data_preprocessor import CmtDataPreprocessor

__all__ = ['CmtDataPreprocessor']
