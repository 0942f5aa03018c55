"""engine subpackage: importing it registers its modules."""
from .attention_info import find_bias_attention, summarize_bias_mode
from .iter_seed_hook import IterSeedHook
from .memory_hook import GPUMemoryHook
from .memory_probe import CudaMemoryProbe, ProcessRSSProbe, make_memory_probe
from .non_finite_loss_hook import NonFiniteLossError, NonFiniteLossHook
from .resumable_epoch_loop import ResumableEpochBasedTrainLoop
from .signal_checkpoint_hook import SignalCheckpointHook, TrainingInterrupted

__all__ = [
    'GPUMemoryHook', 'IterSeedHook', 'CudaMemoryProbe', 'ProcessRSSProbe', 'make_memory_probe',
    'find_bias_attention', 'summarize_bias_mode', 'NonFiniteLossError', 'NonFiniteLossHook',
    'ResumableEpochBasedTrainLoop', 'SignalCheckpointHook', 'TrainingInterrupted'
]
