"""beats-data's own plugin, registered through the ``beats`` entry point."""
