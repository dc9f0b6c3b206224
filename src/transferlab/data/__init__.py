"""Datasets, tasks and batching.

``load_dataset`` gives a ``Dataset`` (images as uint8 arrays decoded once and cached on disk,
float32 feature vectors, or token sequences); ``make_task`` turns a ``TaskSpec`` into tensors;
``batches`` iterates them. Sources are registered by name with their own task keys
(``register_source``). See docs/ARCHITECTURE.md ("Data") for the contract.
"""

from transferlab.data.arrays import from_arrays, from_tokens
from transferlab.data.batching import Augment, batches
from transferlab.data.dataset import Dataset, ImageDataset
from transferlab.data.paths import cache_dir, data_dirs
from transferlab.data.registry import (ImageKeys, SourceKeys, get_source, register_source,
                                       unregister_source)
from transferlab.data.sources import (clear_memory_cache, dataset_names, dataset_status,
                                      load_dataset)
from transferlab.data.spec import TaskSpec
from transferlab.data import synthetic  # noqa: F401,E402 - registers the "synthetic" source
from transferlab.data.tasks import CLASS_GROUPS, Task, make_task, split_halves
from transferlab.data import text as _text  # noqa: E402,F401 - registers banking77 and csv

__all__ = [
    "Augment", "CLASS_GROUPS", "Dataset", "ImageDataset", "ImageKeys", "SourceKeys", "Task",
    "TaskSpec", "batches", "cache_dir", "clear_memory_cache", "data_dirs", "dataset_names",
    "dataset_status", "from_arrays", "from_tokens", "get_source", "load_dataset", "make_task",
    "register_source", "split_halves", "unregister_source",
]
