"""Training Keras models while pruning: TF-MOT wrappers, schedules, masking callbacks, lottery tickets, distribution."""
