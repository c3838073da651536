"""pytest-corrsource: verify that a model repository ships its Corresponding Source.

This module is imported when pytest loads the plugin entry point, so it must stay
import-light: standard library only.
"""

__version__ = "0.1.0"
