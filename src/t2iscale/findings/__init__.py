"""Findings: a study's results read as configurations and arms, compared and fitted (the study -> scaling wiring).

`scaling/` computes from curves and per-sample scores and never reads a study; `study/` runs and records. This
package sits above both: it reads a study through `t2iscale.study.results`, pools training seeds into
configurations, groups them into the arms of a factor, and calls `t2iscale.scaling` to compare and fit. It owns
the `compare`, `fit`, `predict` and `correlate` commands.
"""
