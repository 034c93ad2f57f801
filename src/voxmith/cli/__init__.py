"""The `voxmith` command: a thin shell over `voxmith.Studio`."""
