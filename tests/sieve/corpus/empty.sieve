# No commands: only the implicit keep.
