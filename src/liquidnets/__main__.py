"""`python -m liquidnets ...` runs the `liquidnets` command (see `liquidnets.cli`)."""

from liquidnets.cli import main

if __name__ == "__main__":
    main()
