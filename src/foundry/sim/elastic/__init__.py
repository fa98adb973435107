"""LoongServe at paper scale in simulation: LWM-7B-on-A800 cost models, long-context workloads, an
elastic cluster simulator and its baselines."""
