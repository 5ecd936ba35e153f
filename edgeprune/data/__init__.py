"""Datasets: HAPT (shipped), MNIST / Fashion-MNIST / CIFAR-10 (torchvision or local .npz)."""
from edgeprune.data.hapt import ACTIVITIES, HAPT, load_hapt
from edgeprune.data.images import load_image_dataset
from edgeprune.data.tasks import Task, calibration_batches, load_task, take_samples

__all__ = ["ACTIVITIES", "HAPT", "Task", "calibration_batches", "load_hapt", "load_image_dataset", "load_task",
           "take_samples"]
