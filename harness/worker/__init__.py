"""The in-environment worker. Runs inside a matrix env: standard library, TF, numpy, h5py only."""

# What a check does and how its verdict is formed: bump on any change, so a run (and --resume)
# never mixes two workers' verdicts. Recorded in every results record and in run.json.
WORKER_VERSION = "w6"
