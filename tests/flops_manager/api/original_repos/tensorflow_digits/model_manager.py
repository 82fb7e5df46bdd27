"""A dense Keras network for the digits, trained one epoch per round."""

import tensorflow as tf

from flops_utils.ml_repo_templates import ModelManagerTemplate


class ModelManager(ModelManagerTemplate):
    def __init__(self):
        self.model = tf.keras.Sequential(
            [
                tf.keras.Input(shape=(64,)),
                tf.keras.layers.Dense(32, activation="relu"),
                tf.keras.layers.Dense(10, activation="softmax"),
            ]
        )
        self.model.compile(
            optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
        self.train = self.test = None

    def set_model_data(self):
        from data_manager import DataManager

        print(f"versions: tensorflow {tf.__version__}", flush=True)
        self.train, self.test = DataManager().get_data()

    def get_model(self):
        return self.model

    def get_model_parameters(self):
        return self.model.get_weights()

    def set_model_parameters(self, parameters):
        self.model.set_weights(parameters)

    def fit_model(self):
        x, y = self.train
        self.model.fit(x, y, epochs=1, batch_size=32, verbose=0)
        return len(x)

    def evaluate_model(self):
        x, y = self.test
        loss, accuracy = self.model.evaluate(x, y, verbose=0)
        return loss, accuracy, len(x)
