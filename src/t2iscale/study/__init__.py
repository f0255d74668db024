"""Study spec, run registry (SQLite), executors (local, Slurm), progress; and single runs with their evaluation."""
