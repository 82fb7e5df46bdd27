"""A small CNN for 16x16 RGB images of ten classes, trained with plain SGD."""

from collections import OrderedDict

import numpy
import torch
import torchvision
from torch import nn
from torch.nn import functional

from flops_utils.ml_repo_templates import ModelManagerTemplate


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(16 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = self.pool(functional.relu(self.conv1(x)))
        x = self.pool(functional.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc2(functional.relu(self.fc1(x)))


class ModelManager(ModelManagerTemplate):
    def __init__(self):
        self.model = Net()
        self.trainloader = None
        self.testloader = None

    def set_model_data(self):
        from data_manager import DataManager

        print(
            f"versions: torch {torch.__version__} torchvision {torchvision.__version__} "
            f"numpy {numpy.__version__}",
            flush=True,
        )
        self.trainloader, self.testloader = DataManager().get_data()

    def get_model(self):
        return self.model

    def get_model_parameters(self):
        return [value.cpu().numpy() for value in self.model.state_dict().values()]

    def set_model_parameters(self, parameters):
        keys = self.model.state_dict().keys()
        state = OrderedDict({k: torch.tensor(v) for k, v in zip(keys, parameters, strict=True)})
        self.model.load_state_dict(state, strict=True)

    def fit_model(self):
        optimizer = torch.optim.SGD(self.model.parameters(), lr=0.05, momentum=0.9)
        self.model.train()
        for batch in self.trainloader:
            optimizer.zero_grad()
            loss = functional.cross_entropy(self.model(batch["img"]), batch["label"])
            loss.backward()
            optimizer.step()
        return len(self.trainloader.dataset)

    def evaluate_model(self):
        self.model.eval()
        loss, correct, total = 0.0, 0, 0
        with torch.no_grad():
            for batch in self.testloader:
                outputs = self.model(batch["img"])
                loss += functional.cross_entropy(outputs, batch["label"], reduction="sum").item()
                correct += (outputs.argmax(1) == batch["label"]).sum().item()
                total += len(batch["label"])
        return loss / total, correct / total, total
