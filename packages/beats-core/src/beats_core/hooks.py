"""beats-core's own plugin: the built-in checkpoints and the core ``beats`` sub-commands."""
