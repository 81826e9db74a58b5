"""mirtag.cli: the ``mirtag`` command (typer + rich); thin: parse, call the runtime or trainer, present."""
