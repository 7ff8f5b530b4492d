"""``python -m interp.cli``: the ``interp`` command."""

from interp.cli.app import main

if __name__ == "__main__":
    main()
