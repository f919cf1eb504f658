"""Helpers every stage uses: atomic writes, interrupt handling, quiet third-party loggers, validation messages."""
