# pytester drives the plugin tests in tests/plugin/; pytest accepts pytest_plugins only in a
# conftest it loads before collection starts, which this one is.
pytest_plugins = ["pytester"]
