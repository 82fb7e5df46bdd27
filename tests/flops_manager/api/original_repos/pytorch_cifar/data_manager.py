"""This node's small RGB images (`img`, an `Image` column) as PyTorch data loaders."""

from torch.utils.data import DataLoader
from torchvision.transforms import Compose, Normalize, ToTensor

from flops_utils.ml_repo_building_blocks import load_dataset
from flops_utils.ml_repo_templates import DataManagerTemplate


class DataManager(DataManagerTemplate):
    def __init__(self):
        self.trainloader, self.testloader = self._prepare_data()

    def _prepare_data(self):
        dataset = load_dataset()
        partition = dataset.train_test_split(test_size=0.2, seed=42)
        pytorch_transforms = Compose([ToTensor(), Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])

        def apply_transforms(batch):
            batch["img"] = [pytorch_transforms(img) for img in batch["img"]]
            return batch

        partition = partition.with_transform(apply_transforms)
        trainloader = DataLoader(partition["train"], batch_size=32, shuffle=True)
        testloader = DataLoader(partition["test"], batch_size=64)
        return trainloader, testloader

    def get_data(self):
        return self.trainloader, self.testloader
