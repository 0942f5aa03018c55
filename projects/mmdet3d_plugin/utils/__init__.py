"""Helpers shared by the command-line tools: pre-flight checks of data, versions and checkpoints, the atomic
checkpoint file backend and ``--cfg-options`` parsing."""
from .atomic_file_backend import AtomicLocalBackend, register_atomic_local_backend
from .cfg_options import CfgOptionsAction, apply_cfg_options, load_config
from .checkpoint_check import CheckpointFileError, check_checkpoint_file, checkpoint_seed
from .data_check import DataFileError, check_dataset_files
from .sample_files_check import check_sample_files
from .version_check import DatasetVersionError, check_dataset_versions

__all__ = [
    'AtomicLocalBackend', 'register_atomic_local_backend', 'CfgOptionsAction', 'apply_cfg_options', 'load_config',
    'CheckpointFileError', 'check_checkpoint_file', 'checkpoint_seed', 'DataFileError', 'check_dataset_files',
    'check_sample_files', 'DatasetVersionError', 'check_dataset_versions'
]
