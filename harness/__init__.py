"""tfcompat: a version-compatibility matrix for TensorFlow/Keras model serialization."""

__version__ = "0.1.0"
