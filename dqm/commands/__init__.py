"""CLI subcommands: each module has ``add_parser(subparsers)`` setting ``func(args, settings)``.

Commands are thin: they parse arguments, open what they need (Redis, the store) and
call the library. No physics or storage logic lives here.
"""
