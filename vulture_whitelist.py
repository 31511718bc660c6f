"""Names vulture reports as unused that are used: keep each with the reason.

Run through scripts/test (``vulture`` reads its settings from pyproject.toml).
"""

# Context-manager protocol: __exit__ must take these arguments even when it ignores them.
exc_type  # assistant/audio/sources.py (AudioSource.__exit__)
tb  # assistant/audio/sources.py (AudioSource.__exit__)
# jinja2's sandbox calls is_safe_attribute(self, obj, attr, value) with this positional name.
__self  # assistant/home/templates.py
