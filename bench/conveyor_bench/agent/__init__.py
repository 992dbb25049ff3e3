"""Code that runs inside the bench containers: load generators, watchers, baselines."""
