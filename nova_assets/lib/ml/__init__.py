"""The model: its input matrix, the classifiers, training, predictions and MLflow."""
