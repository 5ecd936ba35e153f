"""Datasets: HAPT (shipped), MNIST / Fashion-MNIST / CIFAR-10 (torchvision or local .npz)."""
from edgeprune.data.hapt import ACTIVITIES, HAPT, load_hapt
from edgeprune.data.images import load_image_dataset

__all__ = ["ACTIVITIES", "HAPT", "load_hapt", "load_image_dataset"]
