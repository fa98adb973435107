"""foundry: research systems made into software you can install, run and build on."""

__version__ = "0.1.0"
