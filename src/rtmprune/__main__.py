"""`python -m rtmprune ...`, also what `torchrun -m rtmprune ...` runs."""

from rtmprune.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
