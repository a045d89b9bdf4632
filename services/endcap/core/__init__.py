"""Shared runtime for every Endcap service: bus, messages, config, errors, runner, paths."""
