"""``python -m interp.cli``: the ``interp`` command."""

from interp.cli.app import app

if __name__ == "__main__":
    app(prog_name="interp")
