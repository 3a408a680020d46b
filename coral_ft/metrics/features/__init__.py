"""Feature networks (I/O, weights, devices), kept apart from the metric math one folder up."""

from coral_ft.metrics.features.base import FeatureExtractor
from coral_ft.metrics.features.inception import InceptionExtractor, load_inception
from coral_ft.metrics.features.vgg import VGG16Extractor, load_vgg16

__all__ = ["FeatureExtractor", "InceptionExtractor", "VGG16Extractor", "load_inception", "load_vgg16"]
