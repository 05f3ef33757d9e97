"""One module per subcommand: `add_parser(subparsers)` (cheap) and `run(args) -> int` (does the work)."""
