"""A small fully connected network on scikit-learn's digits, trained federatedly on the CPU."""

from collections import OrderedDict

import torch
from torch import nn

from flops_utils.ml_repo_templates import ModelManagerTemplate


class DigitsNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.layers(x)


class ModelManager(ModelManagerTemplate):
    def __init__(self):
        torch.manual_seed(0)
        self.model = DigitsNet()
        self.local_epochs = 2
        self.proximal_mu = 0.0

    def configure_round(self, config):
        # FedProx sends proximal_mu each round; other strategies do not, so fit_model stays plain.
        self.proximal_mu = float(config.get("proximal_mu", 0.0))

    def set_model_data(self):
        from data_manager import DataManager

        self.trainloader, self.testloader = DataManager().get_data()

    def get_model(self):
        return self.model

    def get_model_parameters(self):
        return [value.cpu().numpy() for value in self.model.state_dict().values()]

    def set_model_parameters(self, parameters):
        keys = self.model.state_dict().keys()
        state = OrderedDict((k, torch.tensor(v)) for k, v in zip(keys, parameters, strict=True))
        self.model.load_state_dict(state, strict=True)

    def fit_model(self):
        optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9)
        criterion = nn.CrossEntropyLoss()
        global_weights = [w.detach().clone() for w in self.model.parameters()]
        self.model.train()
        for _ in range(self.local_epochs):
            for images, labels in self.trainloader:
                optimizer.zero_grad()
                loss = criterion(self.model(images), labels)
                if self.proximal_mu > 0:  # FedProx: stay near the round's global weights
                    drift = sum(
                        (w - w_global).pow(2).sum()
                        for w, w_global in zip(self.model.parameters(), global_weights, strict=True)
                    )
                    loss = loss + self.proximal_mu / 2 * drift
                loss.backward()
                optimizer.step()
        return len(self.trainloader.dataset)

    def evaluate_model(self):
        criterion = nn.CrossEntropyLoss(reduction="sum")
        self.model.eval()
        loss, correct, total = 0.0, 0, 0
        with torch.no_grad():
            for images, labels in self.testloader:
                outputs = self.model(images)
                loss += criterion(outputs, labels).item()
                correct += (outputs.argmax(dim=1) == labels).sum().item()
                total += len(labels)
        return loss / total, correct / total, total
