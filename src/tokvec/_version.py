"""The installed version, read from the package metadata without importing the rest of tokvec."""


def version() -> str:
    """tokvec's version string, or ``0.0.0+src`` when running from a source tree without an install."""
    from importlib.metadata import PackageNotFoundError  # ~50 ms to import: only when the version is asked
    from importlib.metadata import version as metadata_version

    try:
        return metadata_version("tokvec")
    except PackageNotFoundError:
        return "0.0.0+src"
