"""The in-environment worker. Runs inside a matrix env: standard library, TF, numpy, h5py only."""
