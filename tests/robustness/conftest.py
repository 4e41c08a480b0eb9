"""The plugin test harness (a throw-away project run by pytest in a subprocess), for these tests too."""
from tests.plugin.conftest import project, subprocess_env, xdist_args  # noqa: F401  (fixtures)
