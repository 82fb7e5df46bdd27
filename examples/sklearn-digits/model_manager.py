"""Multinomial logistic regression on scikit-learn's digits, trained federatedly."""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from flops_utils.ml_repo_templates import ModelManagerTemplate

NUM_CLASSES = 10
NUM_FEATURES = 64


class ModelManager(ModelManagerTemplate):
    def __init__(self):
        # warm_start: every round continues from the global parameters set by FLOps.
        self.model = LogisticRegression(max_iter=3, warm_start=True)
        self.model.classes_ = np.arange(NUM_CLASSES)
        self.model.coef_ = np.zeros((NUM_CLASSES, NUM_FEATURES))
        self.model.intercept_ = np.zeros(NUM_CLASSES)

    def set_model_data(self):
        from data_manager import DataManager

        (self.x_train, self.y_train), (self.x_test, self.y_test) = DataManager().get_data()

    def get_model(self):
        return self.model

    def get_model_parameters(self):
        return [self.model.coef_, self.model.intercept_]

    def set_model_parameters(self, parameters):
        self.model.coef_ = np.array(parameters[0])
        self.model.intercept_ = np.array(parameters[1])

    def fit_model(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model.fit(self.x_train, self.y_train)
        return len(self.x_train)

    def evaluate_model(self):
        probabilities = self.model.predict_proba(self.x_test)
        loss = log_loss(self.y_test, probabilities, labels=list(range(NUM_CLASSES)))
        accuracy = self.model.score(self.x_test, self.y_test)
        return loss, accuracy, len(self.x_test)
