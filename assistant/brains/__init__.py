"""Brains: turn an Utterance into tool calls (through the router) and a reply."""
