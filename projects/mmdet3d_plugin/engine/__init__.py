"""engine subpackage: importing it registers its modules."""
from .attention_info import find_bias_attention, summarize_bias_mode
from .iter_seed_hook import IterSeedHook
from .memory_hook import GPUMemoryHook
from .memory_probe import CudaMemoryProbe, ProcessRSSProbe, make_memory_probe
from .merged_param_groups import MergedParamGroupsConstructor
from .non_finite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .object_sample_switch_hook import ObjectSampleSwitchHook, find_object_samples
from .resumable_epoch_loop import ResumableEpochBasedTrainLoop
from .signal_checkpoint_hook import SignalCheckpointHook, TrainingInterrupted
from .sparse_backend import sparse_conv_backend

__all__ = [
    'GPUMemoryHook', 'IterSeedHook', 'CudaMemoryProbe', 'ProcessRSSProbe', 'make_memory_probe', 'find_bias_attention',
    'summarize_bias_mode', 'NonFiniteLossError', 'NonFiniteLossHook', 'ObjectSampleSwitchHook', 'find_object_samples',
    'ResumableEpochBasedTrainLoop', 'MergedParamGroupsConstructor', 'SignalCheckpointHook', 'TrainingInterrupted',
    'sparse_conv_backend'
]
