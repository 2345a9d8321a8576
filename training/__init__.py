"""The training engine: the loop (``training.loop``, driven by ``train.py``), learning-rate
schedule, distributed set-up, validation metrics and the training-curve plot."""
