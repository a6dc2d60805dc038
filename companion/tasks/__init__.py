"""The applications of Part 6, each a task the course generates, its models and its
metrics, built on the core modules of `companion`:

- ``companion.tasks.text``: sentiment classification (chapter 1);
- ``companion.tasks.translation``: dates to ISO dates (chapter 2);
- ``companion.tasks.vision``: a Vision Transformer on handwritten digits (chapter 3);
- ``companion.tasks.recommendation``: next-item recommendation (chapter 4).
"""
