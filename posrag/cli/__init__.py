"""posrag's command line (``posrag --help``)."""
