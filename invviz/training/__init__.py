"""Training plumbing shared by every method: the one loop (:func:`fit`), data-parallel runs under `torchrun`
(:mod:`invviz.training.distributed`), the small image discriminator of the adversarial losses, and step-size
schedules. Checkpoint files are written and read by :mod:`invviz.io`."""

from ..settings import TrainSchedule
from ..validate import check_learning_rate, check_positive_int
from . import distributed, schedule
from .discriminator import Discriminator
from .loop import batch_images, fit

__all__ = ["fit", "TrainSchedule", "batch_images", "check_learning_rate", "check_positive_int", "Discriminator", "distributed", "schedule"]
