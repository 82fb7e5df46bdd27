"""Loads this node's digits (8x8 images, labels 0-9) as PyTorch data loaders."""

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from flops_utils.ml_repo_building_blocks import load_dataset
from flops_utils.ml_repo_templates import DataManagerTemplate


class DataManager(DataManagerTemplate):
    def __init__(self):
        self.trainloader, self.testloader = self._prepare_data()

    def _prepare_data(self):
        # Columns: "image" (64 pixel values, 0-16) and "label" (0-9).
        dataset = load_dataset().with_format("numpy")
        x = torch.tensor(np.stack(dataset["image"]), dtype=torch.float32) / 16.0
        y = torch.tensor(np.asarray(dataset["label"]), dtype=torch.long)
        generator = torch.Generator().manual_seed(0)
        order = torch.randperm(len(x), generator=generator)
        cut = int(0.8 * len(x))
        train, test = order[:cut], order[cut:]
        trainloader = DataLoader(
            TensorDataset(x[train], y[train]), batch_size=32, shuffle=True, generator=generator
        )
        testloader = DataLoader(TensorDataset(x[test], y[test]), batch_size=256)
        return trainloader, testloader

    def get_data(self):
        return self.trainloader, self.testloader
