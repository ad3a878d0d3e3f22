"""How `trajstore.torch` turns arrays into tensors: loader batches (writable, the caller's) are
wrapped without a copy; episode fields (read-only views of the store's map) are copied, since
a tensor may write where it points."""

import warnings

import numpy as np
import torch

import trajstore
from trajstore.torch import StepDataset, WindowDataset, _tensor


def test_batch_tensors_wrap_the_batch_arrays_without_a_copy(frames_store):
    batch = next(trajstore.Loader(frames_store).batches(["obs/frame", "action"], 4, window=2))
    for key, array in batch.items():
        tensor = _tensor(array)
        assert tensor.data_ptr() == array.ctypes.data, f"{key} was copied"
        assert tuple(tensor.shape) == array.shape
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when it wraps a read-only array
        item = next(iter(WindowDataset(frames_store.path, ["obs/frame"], batch_size=4, window=2)))
    assert item["obs/frame"].shape == (4, 2, 64, 64, 3) and item["mask"].shape == (4, 2)


def test_step_items_copy_the_read_only_map(frames_store):
    episode = frames_store.episode(frames_store.episodes()[0].id)
    frame = episode["obs/frame"][0]
    tensor = _tensor(frame)
    assert torch.equal(tensor, torch.from_numpy(frame.copy()))
    tensor[0, 0, 0] += 1
    assert not np.array_equal(tensor.numpy(), frame), "the tensor wrote its own copy, never the store"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        steps = StepDataset(frames_store.path, ["obs/frame", "action"], next=["obs"])
        item = steps[0]
    assert item["obs/frame"].shape == (64, 64, 3)
    # A DataLoader fetches a batch's items in one call; they are the items one by one.
    together = steps.__getitems__([5, 0, len(steps) - 1])
    for got, i in zip(together, [5, 0, len(steps) - 1]):
        alone = steps[i]
        assert got.keys() == alone.keys()
        assert all(torch.equal(got[k], alone[k]) if isinstance(alone[k], torch.Tensor) else got[k] == alone[k] for k in alone)
