"""CLI commands that live in their own module. Each module defines ``register(sub)``: it adds
its subparser to ``sub`` and sets ``handler`` (a function from the parsed arguments to an exit
code); ``pgsafe.cli.COMMAND_MODULES`` lists them."""
