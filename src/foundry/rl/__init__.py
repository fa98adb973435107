"""RL post-training on foundry's engine: StreamRL (disaggregated, streamed, asynchronous) and RLHFuse."""
