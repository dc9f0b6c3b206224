"""Datasets, tasks and batching.

``load_dataset`` gives an ``ImageDataset`` (uint8 arrays, decoded once and cached on disk);
``make_task`` turns a ``TaskSpec`` into normalised tensors; ``batches`` iterates them.
See docs/ARCHITECTURE.md ("Data") for the contract.
"""

from transferlab.data.batching import Augment, batches
from transferlab.data.dataset import ImageDataset, from_arrays
from transferlab.data.paths import cache_dir, data_dirs
from transferlab.data.sources import (clear_memory_cache, dataset_names, dataset_status,
                                      load_dataset)
from transferlab.data.spec import TaskSpec
from transferlab.data.tasks import CLASS_GROUPS, Task, make_task, split_halves

__all__ = [
    "Augment", "CLASS_GROUPS", "ImageDataset", "Task", "TaskSpec", "batches", "cache_dir",
    "clear_memory_cache", "data_dirs", "dataset_names", "dataset_status", "from_arrays",
    "load_dataset", "make_task", "split_halves",
]
