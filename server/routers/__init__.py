"""One router module per endpoint group; ``server/app.py`` includes them all."""
