"""Training: the accelerate loop (`trainer`), CORAL for your own loop (`regularizer`), resume,
signals, sample grids and trackers. From Python, `coral_ft.api.train` / `finetune` run it."""
