"""The one training loop (family-agnostic), optimizer rule, EMA, checkpoint/resume, distributed glue."""
