"""`python -m trajstore ARGS...`: the `trajstore` command line."""

from .cli import main

main()
