"""Helpers shared by the command-line tools."""
from .atomic_file_backend import AtomicLocalBackend, register_atomic_local_backend
from .data_check import DataFileError, check_dataset_files

__all__ = ['AtomicLocalBackend', 'register_atomic_local_backend', 'DataFileError', 'check_dataset_files']
