"""Training: the accelerate loop (`trainer`), CORAL for your own loop (`regularizer`), resume,
signals, sample grids and trackers.

The package is also the `train` function of the Python API: `coral_ft.train(config, out_dir)`
calls `coral_ft.train.trainer.train` (a package and a function cannot share the name
`coral_ft.train` otherwise: importing any `coral_ft.train.*` module binds the package to it).
"""

import sys
import types


class _TrainPackage(types.ModuleType):
    def __call__(self, config, out_dir, **kwargs):
        """train(config, out_dir, *, resume=False, source=None, progress=True, data=None, announce=True)
        -> the run's exported model folder: see coral_ft.train.trainer.train."""
        from coral_ft.train.trainer import train

        return train(config, out_dir, **kwargs)


sys.modules[__name__].__class__ = _TrainPackage
