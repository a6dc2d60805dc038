"""Run the unit tests on one CPU thread, as the notebooks do: the models here are
tiny, so threads only add overhead, and results do not depend on the core count."""

import matplotlib
import torch

matplotlib.use("Agg")  # no window for the figures the tests draw
torch.set_num_threads(1)
