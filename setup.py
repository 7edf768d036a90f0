"""The package list, which pyproject.toml cannot express: simcore's subpackages (found, so a new one
ships without editing this file) plus the repository's top-level scenes/ and assets/ directories, shipped
inside the simcore namespace as simcore.scenes and simcore.assets (a wheel is self-contained and installs
no generic top-level name). Everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["simcore", "simcore.*"]) + ["simcore.scenes", "simcore.assets"],
    package_dir={"simcore.scenes": "scenes", "simcore.assets": "assets"},
    package_data={"simcore.assets": ["*.obj", "LICENSE.md"]},
)
