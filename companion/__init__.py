"""Reference implementations for the course
"Attention, Softmax and Positional Encoding".

Modules, by idea:

- ``companion.softmax``: softmax and its relatives: log-softmax, log-sum-exp,
  Jacobian, cross-entropy, sparsemax, 1.5-entmax, Gumbel-softmax, online softmax.
- ``companion.attention``: attention pooling, scaled dot-product, additive and
  multi-head attention, masks, the hand-derived backward pass.
- ``companion.positional``: absolute and relative positional encodings.
- ``companion.variants``: local, sparse, linear, graph and non-local attention.
- ``companion.models``: the Transformer block, encoder, classifier and language
  model, with the positional scheme as one argument.
- ``companion.pretrained``: all-MiniLM-L6-v2, a real pretrained BERT-style
  sentence encoder, loaded into the course's own layers.
- ``companion.training``: seeding and a small training loop.
- ``companion.tasks``: the applications of Part 6 (``text``, ``translation``,
  ``vision``, ``recommendation``): data generators, models and metrics, built on
  the core modules above.
- ``companion.measure``: time and memory measurements.
- ``companion.validation``: input checks with clear error messages.
- ``companion.data``: small data sets the course generates.
- ``companion.plotting``: the course's figure style and heatmaps.
- ``companion.notebook``: notebook setup and source display.
"""

from importlib.metadata import version

__version__ = version("companion")
