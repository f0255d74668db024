"""One training run with its evaluation along training, as every study executor runs it.

It lives in `study` because evaluation sits downstream of training in the data flow (zoo -> train -> eval ->
study): the training loop only knows hooks, and this is where the evaluation hook is attached (the `t2iscale train`
command gets the same hooks from the entry point, `t2iscale.cli`).
"""

from __future__ import annotations

from t2iscale.eval.along_training import evaluation_hooks
from t2iscale.train.config import TrainConfig
from t2iscale.train.loop import TrainResult, train


def run_training(config: TrainConfig, progress: bool = True) -> TrainResult:
    return train(config, hooks=evaluation_hooks(config, progress=progress), progress=progress)
