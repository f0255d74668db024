"""status.json follows a running run's logged steps (issue 15: it said step 0 for the whole run)."""

import json

from t2iscale.train.config import validate_config
from t2iscale.train.loop import Hook, train

from .helpers import tiny_config


def test_status_json_step_follows_the_logged_steps_while_running(tmp_path):
    seen = []

    def read_status(context):
        status = json.loads((context.run.status_file).read_text())
        seen.append((context.step, status["status"], status["step"]))

    config = validate_config(tiny_config(tmp_path / "run", budget={"total_steps": 4, "log_every_steps": 1}))
    train(config, hooks=[Hook(every_steps=1, callback=read_status)], progress=False)
    assert seen[:4] == [(1, "running", 1), (2, "running", 2), (3, "running", 3), (4, "running", 4)]
    final = json.loads((tmp_path / "run" / "status.json").read_text())
    assert (final["status"], final["step"]) == ("finished", 4)
