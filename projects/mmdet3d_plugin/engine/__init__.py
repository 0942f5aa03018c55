"""engine subpackage: importing it registers its modules."""
from .attention_info import find_bias_attention, summarize_bias_mode
from .iter_seed_hook import IterSeedHook
from .memory_hook import GPUMemoryHook
from .memory_probe import CudaMemoryProbe, ProcessRSSProbe, make_memory_probe
from .object_sample_switch_hook import ObjectSampleSwitchHook, find_object_samples

__all__ = [
    'GPUMemoryHook', 'IterSeedHook', 'CudaMemoryProbe', 'ProcessRSSProbe', 'make_memory_probe',
    'find_bias_attention', 'summarize_bias_mode', 'ObjectSampleSwitchHook', 'find_object_samples'
]
