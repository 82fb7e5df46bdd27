"""Loads this node's digits (8x8 images, labels 0-9) and splits them for training and testing."""

import numpy as np
from sklearn.model_selection import train_test_split

from flops_utils.ml_repo_building_blocks import load_dataset
from flops_utils.ml_repo_templates import DataManagerTemplate


class DataManager(DataManagerTemplate):
    def __init__(self):
        self.training_data, self.testing_data = self._prepare_data()

    def _prepare_data(self):
        # Columns: "image" (64 pixel values, 0-16) and "label" (0-9).
        dataset = load_dataset().with_format("numpy")
        x = np.asarray(np.stack(dataset["image"]), dtype=np.float64) / 16.0
        y = np.asarray(dataset["label"], dtype=np.int64)
        x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0)
        return (x_train, y_train), (x_test, y_test)

    def get_data(self):
        return self.training_data, self.testing_data
