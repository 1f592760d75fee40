"""The ``alphaloop`` command line: one program, sub-commands."""
