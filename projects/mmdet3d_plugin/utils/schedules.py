"""Training-schedule rewrites of a config, in place: the iteration-based loop of the demo and of the
training tests, and the demo's learning schedule on a GPU (``tools/run_demo.py``)."""
from mmengine.config import Config


def use_iteration_schedule(cfg: Config, max_iters: int, ckpt_interval: int) -> Config:
    """In place: an iteration-based loop of ``max_iters`` without validation, a checkpoint every
    ``ckpt_interval`` iterations and a per-iteration log (unsmoothed, so scalars.json holds each step's loss)."""
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters + 1)
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=ckpt_interval,
        max_keep_ckpts=3,
        backend_args=dict(backend='atomic_local'))
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(type='LogProcessor', window_size=1, by_epoch=False)
    return cfg


def use_learning_schedule(cfg: Config, epochs: int) -> Config:
    """In place: ``epochs`` epochs with the fit config's schedule shape (linear warm-up over 200 iterations, cosine
    decay to lr/1000 at the last epoch) and no validation during training (the test loop scores at the end)."""
    lr = cfg.optim_wrapper.optimizer.lr
    cfg.train_cfg = dict(type='ResumableEpochBasedTrainLoop', max_epochs=epochs, val_interval=epochs + 1)
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=200),
        dict(
            type='CosineAnnealingLR',
            T_max=epochs,
            eta_min=lr * 1e-3,
            begin=0,
            end=epochs,
            by_epoch=True,
            convert_to_iter_based=True)
    ]
    return cfg
