"""A third-party beats plugin, as a user would write one: two tiny checkpoints and a sub-command."""
