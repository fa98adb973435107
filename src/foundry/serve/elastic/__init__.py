"""LoongServe's elastic sequence parallelism: placement, plans, scheduler, and the instances that run them."""
