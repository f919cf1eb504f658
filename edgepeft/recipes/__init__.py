"""Recipes shipped with edgepeft; ``edgepeft train`` with no argument runs digits-distill.toml."""
