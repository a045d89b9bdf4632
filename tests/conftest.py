"""Suite-wide pytest configuration: registers the real-component fixtures of ``tests/fixtures``."""

# Registered as plugins (not star-imported) so each fixture module keeps its own namespace and
# its fixtures are visible to every test directory below tests/.
pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.gateway",
    "tests.fixtures.browser",
    "tests.fixtures.signage",
    "tests.fixtures.swtpm",
    "tests.fixtures.trust",
    "tests.fixtures.dbus",
    "tests.fixtures.ota",
    "tests.fixtures.static_http",
    "tests.fixtures.rauc",
    "tests.fixtures.maint",
    "tests.fixtures.systemd_manager",
]


def pytest_collection_modifyitems(items):
    """The QEMU system tests first: with ``--dist loadfile`` their files, the longest of the suite, start at
    once on their own workers while the rest of the suite fills the time around them."""
    items.sort(key=lambda item: 0 if "/tests/system/" in str(item.path) else 1)
